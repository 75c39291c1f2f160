/* The judge: what a real kernel does with a seccomp filter, call by call, without executing
 * any of the calls. Built static for each architecture of the test bed (build.sh; natively for
 * x86_64 by the tests) from this one file.
 *
 * Reads jobs from standard input (native byte order, one after another until end of input):
 *   u32 0x314a4353 ("SCJ1")
 *   u32 FLAGS: bit 0 "kills as traps" (below)
 *   u32 N, then N struct sock_filter records (the filter under test, as `scpc build` writes it)
 *   u32 M, then M calls: u32 nr, u8 PRESENT, then one u64 per bit set in PRESENT (arguments
 *       0..5; an argument whose bit is clear is 0). On a 32-bit architecture each argument is
 *       one 32-bit register: the upper half is dropped (register pairs are two arguments).
 * Writes, per job, "job" and one line per call, then "end":
 *   n ARCH          the call reached the supervisor (the filter allowed it, or logged or traced
 *                   it: see below) and the kernel's seccomp_data held exactly the number and
 *                   registers the call was made with; ARCH is seccomp_data.arch (hex)
 *   N NR ARCH A0..A5  as `n`, but seccomp_data differed from the registers: what it held (hex)
 *   e ERRNO         the call returned -ERRNO (0..4095) without reaching the supervisor
 *   r VALUE         it returned something else (hex)
 *   t DATA ARCH NR  SIGSYS (trap): si_errno, si_arch (hex), si_syscall
 *   kt              the calling thread was killed, the process lived on (kill_thread)
 *   kp              the process was killed by SIGSYS (kill_process)
 *   Kt, Kp          with "kills as traps": the filter returned SECCOMP_RET_KILL_THREAD or
 *                   _PROCESS (seen as a trap with the marker data standing for it)
 *   s SIGNAL        the process was killed by another signal
 * or, if the kernel refuses the filter, "refused ERRNO" instead of the call lines.
 *
 * How nothing is executed: each call is made by a worker thread that first installs an outer
 * filter returning SECCOMP_RET_USER_NOTIF for every call, with a listener, then the filter under
 * test. The kernel runs both and takes the strongest action: kill, trap and errno beat
 * user_notif and happen as they would without the outer filter; allow, log and trace are weaker,
 * so those calls are notified to the supervisor (the process's other thread), which answers
 * each with 0 instead of running it. A `notify` of the filter under test ties with the outer
 * one, and the kernel takes the most recently installed filter's: it has no listener, so the
 * call fails with ENOSYS ("e 38"), unseen by the supervisor. The outer filter lets one call
 * through unnotified: the worker's one-byte write telling the supervisor its listener exists,
 * made before the filter under test is installed and only from one instruction address (the
 * calls under test are made from another). Calls the kernel does not filter at all run whatever
 * the filters say (x86_64's uretprobe and uprobe): the tests find them with a probe job.
 * A trap's SIGSYS handler records it and jumps to the next call (SA_NODEFER, no sigreturn:
 * rt_sigreturn would be judged by the filter too). A killed thread is replaced by a fresh one;
 * a killed process by a fresh fork, from the next call on.
 *
 * A kill costs a new thread or process and two filter attachments, milliseconds under TCG: with
 * "kills as traps" the judge replaces every `ret SECCOMP_RET_KILL_THREAD` and `_PROCESS` of the
 * filter by `ret SECCOMP_RET_TRAP | marker`, with two marker values no trap of the filter uses,
 * and reports a marker's SIGSYS as the kill it stands for. Which return instruction the kernel
 * reaches, on the registers it read, is still the kernel's decision; that a kill kills, and
 * which of two actions wins, is shown by jobs without the flag. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum { NONE, RET, NOTIFIED, TRAPPED, KILLED_THREAD, KILLED_PROCESS, SIGNALLED };

struct call {
    uint32_t nr;
    uint64_t args[6];
};

struct result {
    volatile int kind;
    int32_t data; /* trap data, signal */
    uint32_t nr, arch;
    uint64_t args[6];
    long ret;
};

/* shared between the fork server and its child (MAP_SHARED) */
struct shared {
    volatile long cur;     /* the call being made */
    volatile int done;     /* the worker made its last call */
    volatile int listener; /* the worker's listener descriptor, -1 until installed */
    volatile int ready;    /* the filter under test is installed */
    volatile int refused;  /* errno of the kernel's refusal of the filter, or 0 */
    struct result res[];
};

static struct sock_filter *code;
static struct sock_fprog prog;
static struct call *calls;
static long ncalls;
static struct shared *sh;
static sigjmp_buf jump;
static long next_call;
static int kills_as_traps;
static uint32_t kill_thread_marker, kill_process_marker;

static long raw(uint32_t nr, const uint64_t *a) {
#if defined(__x86_64__)
    register long rax __asm__("rax") = (int32_t)nr;
    register unsigned long rdi __asm__("rdi") = a[0], rsi __asm__("rsi") = a[1], rdx __asm__("rdx") = a[2];
    register unsigned long r10 __asm__("r10") = a[3], r8 __asm__("r8") = a[4], r9 __asm__("r9") = a[5];
    __asm__ volatile("syscall"
                     : "+r"(rax)
                     : "r"(rdi), "r"(rsi), "r"(rdx), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return rax;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = (int32_t)nr;
    register unsigned long x0 __asm__("x0") = a[0], x1 __asm__("x1") = a[1], x2 __asm__("x2") = a[2];
    register unsigned long x3 __asm__("x3") = a[3], x4 __asm__("x4") = a[4], x5 __asm__("x5") = a[5];
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
#elif defined(__arm__)
    register long r7 __asm__("r7") = (long)nr;
    register unsigned long r0 __asm__("r0") = a[0], r1 __asm__("r1") = a[1], r2 __asm__("r2") = a[2];
    register unsigned long r3 __asm__("r3") = a[3], r4 __asm__("r4") = a[4], r5 __asm__("r5") = a[5];
    __asm__ volatile("svc #0" : "+r"(r0) : "r"(r7), "r"(r1), "r"(r2), "r"(r3), "r"(r4), "r"(r5) : "memory");
    return (long)r0;
#elif defined(__riscv) && __riscv_xlen == 64
    register long a7 __asm__("a7") = (int32_t)nr;
    register unsigned long a0 __asm__("a0") = a[0], a1 __asm__("a1") = a[1], a2 __asm__("a2") = a[2];
    register unsigned long a3 __asm__("a3") = a[3], a4 __asm__("a4") = a[4], a5 __asm__("a5") = a[5];
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a5) : "memory");
    return a0;
#else
#error "the judge knows the system call convention of x86_64, aarch64, arm and riscv64"
#endif
}

/* what the kernel can see of an argument: one register */
static uint64_t reg(uint64_t v) { return (uint64_t)(unsigned long)v; }

static void on_sigsys(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    struct result *r = &sh->res[sh->cur];
    r->data = si->si_errno;
    r->arch = si->si_arch;
    r->nr = (uint32_t)si->si_syscall;
    r->kind = TRAPPED;
    siglongjmp(jump, 1);
}

static long sys_seccomp(unsigned flags, struct sock_fprog *p) {
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, p);
}

/* write(fd, buf, 1) from one fixed instruction, the only call the outer filter lets through
 * without notifying it: `judge_exempt_ret` is the address after the system call instruction,
 * which the kernel reports as seccomp_data.instruction_pointer on every architecture here. The
 * worker makes it once, to tell the supervisor its listener is there, before the filter under
 * test is installed. */
extern const char judge_exempt_ret[];
__attribute__((noinline, noclone)) static void exempt_write(int fd, const char *buf) {
#if defined(__x86_64__)
    register long rax __asm__("rax") = SYS_write;
    register long rdi __asm__("rdi") = fd, rsi __asm__("rsi") = (long)buf, rdx __asm__("rdx") = 1;
    __asm__ volatile("syscall\n.globl judge_exempt_ret\njudge_exempt_ret:"
                     : "+r"(rax) : "r"(rdi), "r"(rsi), "r"(rdx) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = SYS_write;
    register long x0 __asm__("x0") = fd, x1 __asm__("x1") = (long)buf, x2 __asm__("x2") = 1;
    __asm__ volatile("svc #0\n.globl judge_exempt_ret\njudge_exempt_ret:" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
#elif defined(__arm__)
    register long r7 __asm__("r7") = SYS_write;
    register long r0 __asm__("r0") = fd, r1 __asm__("r1") = (long)buf, r2 __asm__("r2") = 1;
    __asm__ volatile("svc #0\n.globl judge_exempt_ret\njudge_exempt_ret:" : "+r"(r0) : "r"(r7), "r"(r1), "r"(r2) : "memory");
#elif defined(__riscv)
    register long a7 __asm__("a7") = SYS_write;
    register long a0 __asm__("a0") = fd, a1 __asm__("a1") = (long)buf, a2 __asm__("a2") = 1;
    __asm__ volatile("ecall\n.globl judge_exempt_ret\njudge_exempt_ret:" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2) : "memory");
#endif
}

static int ready_pipe[2];

/* The worker: installs the outer filter and the filter under test, then makes the calls from
 * `next_call` on. After the outer filter, it makes no system call but the exempt write and the
 * ones under test. */
static void *worker(void *unused) {
    (void)unused;
    uint64_t ip = (uint64_t)(uintptr_t)judge_exempt_ret;
    /* notify everything but write() at judge_exempt_ret (seccomp_data: nr at 0, ip at 8) */
    struct sock_filter outer_code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_write, 0, 5),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 8),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)ip, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 12),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(ip >> 32), 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
    };
    struct sock_fprog outer = { sizeof outer_code / sizeof outer_code[0], outer_code };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) _exit(90);
    long fd = sys_seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER, &outer);
    if (fd < 0) _exit(91);
    sh->listener = (int)fd;
    exempt_write(ready_pipe[1], "r");
    /* notified: the supervisor lets this one call through */
    if (sys_seccomp(0, &prog)) {
        sh->refused = errno;
        for (;;) __asm__ volatile("" ::: "memory");
    }
    sh->ready = 1;
    for (volatile long i = next_call; i < ncalls; i++) {
        sh->cur = i;
        if (!sigsetjmp(jump, 0)) {
            uint64_t a[6];
            for (int j = 0; j < 6; j++) a[j] = calls[i].args[j];
            long r = raw(calls[i].nr, a);
            if (sh->res[i].kind == NONE) {
                sh->res[i].ret = r;
                sh->res[i].kind = RET;
            }
        }
    }
    sh->done = 1;
    /* no system call is safe now: the process's other thread sees `done` and ends the process */
    for (;;) __asm__ volatile("" ::: "memory");
}

/* The process under test: this thread supervises, a worker makes the calls. Exit 0 when every
 * call from `from` on has a result; killed with the worker by kill_process. */
static void group(long from) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    if (sigaction(SIGSYS, &sa, 0)) _exit(92);
    if (pipe(ready_pipe)) _exit(92);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    next_call = from;
    while (next_call < ncalls) {
        sh->listener = -1;
        sh->ready = 0;
        pthread_t w;
        if (pthread_create(&w, &attr, worker, 0)) _exit(93);
        /* blocks until the worker's listener exists (or the worker died setting up) */
        char byte;
        if (read(ready_pipe[0], &byte, 1) != 1 || sh->listener < 0) _exit(97);
        int fd = sh->listener;
        for (;;) {
            /* the timeout only serves to see `done`: the worker cannot say it without a call */
            struct pollfd p = { fd, POLLIN, 0 };
            int n = poll(&p, 1, 2);
            if (sh->refused) _exit(3);
            if (n > 0 && (p.revents & POLLIN)) {
                struct seccomp_notif req;
                struct seccomp_notif_resp resp;
                memset(&req, 0, sizeof req);
                if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req)) {
                    if (errno == EINTR || errno == ENOENT) continue;
                    _exit(94);
                }
                memset(&resp, 0, sizeof resp);
                resp.id = req.id;
                if (!sh->ready) {
                    /* the worker installing the filter under test */
                    if (req.data.nr != SYS_seccomp || req.data.args[2] != (uint64_t)(uintptr_t)&prog) _exit(95);
                    resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
                } else {
                    struct result *r = &sh->res[sh->cur];
                    r->nr = (uint32_t)req.data.nr;
                    r->arch = req.data.arch;
                    memcpy(r->args, req.data.args, sizeof r->args);
                    r->kind = NOTIFIED;
                }
                if (ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp) && errno != ENOENT) _exit(96);
            } else if (n > 0 && (p.revents & (POLLHUP | POLLERR))) {
                /* no thread uses the filter any more: the worker was killed alone */
                pthread_join(w, 0);
                close(fd);
                sh->res[sh->cur].kind = KILLED_THREAD;
                next_call = sh->cur + 1;
                break;
            } else if (sh->done) {
                _exit(0);
            }
        }
    }
    _exit(0);
}

static int read_all(void *buf, size_t n) {
    char *p = buf;
    while (n) {
        ssize_t r = read(0, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void die(const char *what) {
    fprintf(stderr, "judge: %s\n", what);
    exit(2);
}

static void report(const struct call *c, const struct result *r) {
    switch (r->kind) {
    case NOTIFIED: {
        int same = r->nr == c->nr;
        for (int j = 0; j < 6; j++) same &= r->args[j] == reg(c->args[j]);
        if (same) {
            printf("n %x\n", r->arch);
        } else {
            printf("N %x %x", r->nr, r->arch);
            for (int j = 0; j < 6; j++) printf(" %llx", (unsigned long long)r->args[j]);
            printf("\n");
        }
        break;
    }
    case RET:
        if (r->ret <= 0 && r->ret >= -4095)
            printf("e %ld\n", -r->ret);
        else
            printf("r %lx\n", (unsigned long)r->ret);
        break;
    case TRAPPED:
        if (kills_as_traps && (uint32_t)r->data == kill_thread_marker)
            printf("Kt\n");
        else if (kills_as_traps && (uint32_t)r->data == kill_process_marker)
            printf("Kp\n");
        else
            printf("t %d %x %u\n", r->data, r->arch, r->nr);
        break;
    case KILLED_THREAD: printf("kt\n"); break;
    case KILLED_PROCESS: printf("kp\n"); break;
    case SIGNALLED: printf("s %d\n", r->data); break;
    default: printf("?\n"); break;
    }
}

int main(void) {
    /* a killed process must leave no core behind */
    struct rlimit none = { 0, 0 };
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    code = malloc(BPF_MAXINSNS * sizeof *code);
    if (!code) die("out of memory");
    for (;;) {
        uint32_t magic, flags, n, m;
        ssize_t got = read(0, &magic, 4);
        if (got == 0) break;
        if (got != 4 || magic != 0x314a4353) die("not a job (bad magic)");
        if (read_all(&flags, 4)) die("short flags");
        if (read_all(&n, 4) || n == 0 || n > BPF_MAXINSNS) die("bad filter length");
        if (read_all(code, n * sizeof *code)) die("short filter");
        prog.len = (unsigned short)n;
        prog.filter = code;
        kills_as_traps = flags & 1;
        if (kills_as_traps) {
            /* two data values no trap of the filter returns */
            static unsigned char used[65536];
            memset(used, 0, sizeof used);
            for (uint32_t i = 0; i < n; i++)
                if (code[i].code == (BPF_RET | BPF_K) && (code[i].k & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_TRAP)
                    used[code[i].k & SECCOMP_RET_DATA] = 1;
            uint32_t d = 0xffff;
            while (used[d]) d--;
            kill_process_marker = d--;
            while (used[d]) d--;
            kill_thread_marker = d;
            for (uint32_t i = 0; i < n; i++) {
                if (code[i].code != (BPF_RET | BPF_K)) continue;
                if ((code[i].k & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_KILL_PROCESS)
                    code[i].k = SECCOMP_RET_TRAP | kill_process_marker;
                else if ((code[i].k & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_KILL_THREAD)
                    code[i].k = SECCOMP_RET_TRAP | kill_thread_marker;
            }
        }
        if (read_all(&m, 4)) die("short call count");
        free(calls);
        calls = calloc(m ? m : 1, sizeof *calls);
        if (!calls) die("out of memory");
        for (uint32_t i = 0; i < m; i++) {
            uint8_t present;
            if (read_all(&calls[i].nr, 4) || read_all(&present, 1)) die("short call");
            for (int j = 0; j < 6; j++)
                if (present & (1 << j) && read_all(&calls[i].args[j], 8)) die("short argument");
        }
        ncalls = m;
        size_t size = sizeof *sh + (size_t)m * sizeof sh->res[0];
        sh = mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (sh == MAP_FAILED) die("mmap");
        printf("job\n");
        fflush(stdout);
        long from = 0;
        int refused = 0;
        while (from < m) {
            sh->cur = from;
            sh->done = 0;
            sh->refused = 0;
            pid_t pid = fork();
            if (pid < 0) die("fork");
            if (pid == 0) group(from);
            int status;
            if (waitpid(pid, &status, 0) != pid) die("waitpid");
            if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
                refused = sh->refused;
                break;
            }
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) break;
            if (WIFEXITED(status)) {
                fprintf(stderr, "judge: the process under test failed (exit %d)\n", WEXITSTATUS(status));
                exit(2);
            }
            struct result *r = &sh->res[sh->cur];
            if (WTERMSIG(status) == SIGSYS) {
                r->kind = KILLED_PROCESS;
            } else {
                r->kind = SIGNALLED;
                r->data = WTERMSIG(status);
            }
            from = sh->cur + 1;
        }
        if (refused) {
            printf("refused %d\n", refused);
        } else {
            for (uint32_t i = 0; i < m; i++) report(&calls[i], &sh->res[i]);
        }
        printf("end\n");
        fflush(stdout);
        munmap(sh, size);
    }
    return 0;
}
