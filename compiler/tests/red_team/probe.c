/* Raw calls for the red-team kernel tests (compiler/tests/red_team.rs): each mode makes one
 * call the way an attacker would and prints the kernel's return value (-errno on failure). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* An i386 call through int 0x80 from this 64-bit process: registers are taken at 32 bits. */
static long int80(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return (long)(int)ret;
}


int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    long rc;
    if (!strcmp(mode, "mmap-fd")) {
        /* mmap of fd 1000, with (argv[2] == "high") garbage in the upper half of the register,
         * which the kernel drops (fget takes an unsigned int) */
        int fd = open("/proc/self/exe", O_RDONLY);
        if (fd < 0 || dup2(fd, 1000) != 1000) return 3;
        unsigned long reg = 1000;
        if (argc > 2 && !strcmp(argv[2], "high")) reg |= 1UL << 32;
        rc = syscall(SYS_mmap, 0, 4096, PROT_READ, MAP_PRIVATE, reg, 0);
        printf("%ld\n", rc == -1 ? -(long)errno : (rc > 0 ? 1 : rc));
    } else if (!strcmp(mode, "socket-i386")) {
        /* i386 socket(AF_UNIX, SOCK_STREAM, 0), nr 359 */
        printf("%ld\n", int80(359, 1, 1, 0));
    } else if (!strcmp(mode, "socketcall-i386")) {
        /* i386 socketcall(SYS_SOCKET, {AF_UNIX, SOCK_STREAM, 0}), nr 102: the arguments in
         * memory below 4 GiB, where a 32-bit pointer reaches */
        uint32_t *args = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
        if (args == MAP_FAILED) return 3;
        args[0] = 1; args[1] = 1; args[2] = 0;
        printf("%ld\n", int80(102, 1, (long)(uintptr_t)args, 0));
    } else if (!strcmp(mode, "nr")) {
        /* a bare call by number (uretprobe 335, uprobe 336) */
        long nr = 0;
        sscanf(argc > 2 ? argv[2] : "0", "%ld", &nr);
        rc = syscall(nr, 0, 0, 0);
        printf("%ld\n", rc == -1 ? -(long)errno : rc);
    } else {
        return 2;
    }
    return 0;
}
