/* Runs a command under a seccomp filter on a test bed node: `under FILTER.bpf CMD [ARG...]`
 * reads the filter (raw `struct sock_filter` records, as `scpc build` writes them), sets
 * no_new_privs, installs it and execs CMD, as `scpc exec` does on this machine. Built static
 * for the node by compiler/tests/cross_arch_draft.rs with Debian's cross compiler. */
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static struct sock_filter code[BPF_MAXINSNS];

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: under FILTER.bpf CMD [ARG...]\n");
        return 126;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        perror(argv[1]);
        return 126;
    }
    ssize_t n = read(fd, code, sizeof code);
    close(fd);
    if (n <= 0 || n % sizeof code[0]) {
        fprintf(stderr, "%s: not a filter\n", argv[1]);
        return 126;
    }
    struct sock_fprog prog = { (unsigned short)(n / sizeof code[0]), code };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) {
        perror("seccomp");
        return 126;
    }
    execv(argv[2], argv + 2);
    perror(argv[2]);
    return 127;
}
