/* The aarch64 node's witness: loads a seccomp filter file (raw `struct sock_filter` records, as
 * `scpc build` writes them) and shows what it does to some system calls, each made by a fresh
 * child that installs the filter first, so that one call's fate cannot hide another's.
 *
 *   seccheck FILTER.bpf CALL...      CALL: write | socket | getpid | uname | openat
 *
 * prints one line per call: "CALL allowed", "CALL errno N" or "CALL killed by signal N".
 * Built static for each VM node by build.sh (its cross compiler, -static). */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sock_filter code[BPF_MAXINSNS];
static struct sock_fprog prog = { 0, code };

static long call(const char *name) {
    static struct utsname u;
    if (!strcmp(name, "write")) return syscall(SYS_write, 1, "", 0);
    if (!strcmp(name, "socket")) return syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    if (!strcmp(name, "getpid")) return syscall(SYS_getpid);
    if (!strcmp(name, "uname")) return syscall(SYS_uname, &u);
    if (!strcmp(name, "openat")) return syscall(SYS_openat, AT_FDCWD, "/", O_RDONLY);
    errno = ENOSYS;
    return -2;
}

/* the child: nothing but the filter's calls after the filter is in place (snprintf makes none) */
static void child(const char *name) {
    char line[128];
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) _exit(90);
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) _exit(91);
    long r = call(name);
    int n = r == -2 ? snprintf(line, sizeof line, "%s unknown\n", name)
          : r < 0   ? snprintf(line, sizeof line, "%s errno %d\n", name, errno)
                    : snprintf(line, sizeof line, "%s allowed\n", name);
    write(1, line, n);
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: seccheck FILTER.bpf CALL...\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        perror(argv[1]);
        return 2;
    }
    ssize_t n = read(fd, code, sizeof code);
    close(fd);
    if (n <= 0 || n % sizeof code[0]) {
        fprintf(stderr, "%s: not a filter (%zd bytes)\n", argv[1], n);
        return 2;
    }
    prog.len = n / sizeof code[0];
    for (int i = 2; i < argc; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) child(argv[i]);
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) != pid) {
            perror("fork");
            return 2;
        }
        if (WIFSIGNALED(status))
            printf("%s killed by signal %d\n", argv[i], WTERMSIG(status));
        else if (WEXITSTATUS(status) == 90 || WEXITSTATUS(status) == 91)
            printf("%s: the filter could not be installed (%s)\n", argv[i],
                   WEXITSTATUS(status) == 90 ? "no_new_privs" : "seccomp");
        else if (WEXITSTATUS(status))
            printf("%s exited %d\n", argv[i], WEXITSTATUS(status));
    }
    return 0;
}
