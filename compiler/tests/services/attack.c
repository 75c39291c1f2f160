/* A stand-in for attacker code running inside a service (an exploited bug): loaded with
 * LD_PRELOAD, it starts a thread that waits for a trigger file, then tries one forbidden
 * action named by SCPC_ATTACK: "shell" (fork and exec /bin/sh), "ptrace" or "mount". If the
 * action is not stopped, it leaves evidence in TRIGGER.out. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void evidence(const char *trigger, const char *what) {
    char path[4096];
    snprintf(path, sizeof path, "%s.out", trigger);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        write(fd, what, strlen(what));
        close(fd);
    }
}

/* copied at start: nginx and redis overwrite their environment to set the process title */
static char trigger[4096], what[64];

static void *attacker(void *arg) {
    struct stat st;
    (void)arg;
    while (stat(trigger, &st) != 0)
        usleep(20000);
    if (strcmp(what, "shell") == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            evidence(trigger, "shell forked\n");
            execl("/bin/sh", "sh", "-c", "echo shell ran", (char *)0);
            _exit(127);
        }
        if (pid > 0)
            waitpid(pid, 0, 0);
    } else if (strcmp(what, "ptrace") == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
    } else if (strcmp(what, "mount") == 0) {
        mount("none", "/mnt", "tmpfs", 0, 0);
    }
    evidence(trigger, "attack survived\n");
    return 0;
}

__attribute__((constructor)) static void start(void) {
    if (getenv("SCPC_ATTACK") && getenv("SCPC_ATTACK_TRIGGER")) {
        pthread_t t;
        snprintf(trigger, sizeof trigger, "%s", getenv("SCPC_ATTACK_TRIGGER"));
        snprintf(what, sizeof what, "%s", getenv("SCPC_ATTACK"));
        if (pthread_create(&t, 0, attacker, 0) == 0)
            pthread_detach(t);
    }
}
