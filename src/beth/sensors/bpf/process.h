/* Record layout and constants shared by process.bpf.c and beth/sensors/records.py.
 *
 * Every event reaches user space as one variable-length record in the ring buffer:
 *   struct rec (REC_HDR bytes) | payload (payload_len bytes, padded to 8) | stack_n user frames (u64)
 * The payload holds the argument data that is not a plain register value, in argument order:
 *   ARG_STR, ARG_SOCKADDR, ARG_INT2: u16 length + bytes;  ARG_STRARR: u16 length + NUL-terminated strings.
 * records.py parses this header with its own constants; tests/sensors/test_decode_abi.py checks that the
 * two agree. Change BETH_ABI whenever the layout changes.
 */
#ifndef BETH_PROCESS_H
#define BETH_PROCESS_H

#define BETH_ABI 1

#define MAX_SYSCALL 512   /* syscall_cfg entries: x86_64 syscall numbers */
#define N_ARGS 6
#define MAX_STACK 20      /* user stack frames, as in BETH */
#define MAX_STR 4096      /* one string argument or path (PATH_MAX, NUL included) */
#define MAX_ARGV 64       /* argv elements captured by execve/execveat */
#define MAX_PATH_DEPTH 64 /* path components walked for security_* pathnames */
#define MAX_NOAUDIT 8     /* noaudit_ranges entries */
#define CAP_FRAMES 8      /* kernel frames searched for a noaudit caller */
#define REC_MAX 16384     /* one record, header and stack included */
#define REC_HDR 136
#define PAYLOAD_MAX (REC_MAX - REC_HDR - 8 * MAX_STACK - 8)

/* Tracee v0.5 ids of the events this sensor derives from tracepoints. */
#define EV_CAP_CAPABLE 1003
#define EV_BPRM_CHECK 1004
#define EV_FILE_OPEN 1005
#define EV_INODE_UNLINK 1006
#define EV_PROCESS_EXIT 1010
#define EV_SB_MOUNT 1019

/* syscall_cfg flags: what a syscall's exit (or enter) produces. */
#define SC_EMIT 0x01       /* the syscall event itself */
#define SC_FILE_OPEN 0x02  /* a successful call emits security_file_open (the fd is the return value) */
#define SC_UNLINK 0x04     /* a successful call emits security_inode_unlink */
#define SC_SB_MOUNT 0x08   /* a successful call emits security_sb_mount */
#define SC_SKIP_CHILD 0x10 /* fork family: the child's return (0) is not an event */
#define SC_AT_ENTER 0x20   /* execve/execveat: captured at enter, emitted at exit; exit/exit_group: at enter */

/* How an argument is captured. */
#define ARG_RAW 0      /* the register value only */
#define ARG_STR 1      /* NUL-terminated user string */
#define ARG_SOCKADDR 2 /* struct sockaddr, sized by its family */
#define ARG_STRARR 3   /* NULL-terminated array of user strings (argv) */
#define ARG_INT2 4     /* int[2] (pipe fds), read at exit */
#define ARG_SKIP 5     /* not captured (envp, as Tracee v0.5 by default) */

/* rec.flags */
#define REC_TRUNCATED 0x1 /* a string, argv or path was cut at its limit */
#define REC_FAULT 0x2     /* a user-memory read failed (the value is empty) */

/* config.filters */
#define FILTER_PIDS 0x1
#define FILTER_UIDS 0x2
#define FILTER_COMMS 0x4

/* config.events: non-syscall events selected */
#define EVB_CAP_CAPABLE 0x1
#define EVB_BPRM_CHECK 0x2
#define EVB_PROCESS_EXIT 0x4

/* counters map keys (per CPU) */
#define CNT_LOST 0
#define CNT_SENT 1
#define CNT_TRUNCATED 2
#define CNT_KEYS 3

#ifdef __BPF__
struct sc_cfg {
	__u8 flags;
	__u8 kinds[N_ARGS];
	__u8 pad;
};

struct config {
	__u32 self_tgid;    /* the sensor's own process, never traced (0: trace it too) */
	__u32 filters;      /* FILTER_* */
	__u32 stack;        /* 1: capture user stacks */
	__u32 wakeup_bytes; /* wake the reader once this much data waits (0: on every record) */
	__u32 events;       /* EVB_* */
	__u32 noaudit_n;    /* entries in noaudit_ranges */
};

/* Kernel text [start, end) of a function that asks for a capability with CAP_OPT_NOAUDIT. */
struct text_range {
	__u64 start;
	__u64 end;
};

struct rec {
	__u64 ts;      /* ns since boot */
	__s64 ret;     /* syscall return value */
	__u64 args[N_ARGS];
	__u64 aux[3];  /* derived events: dev, inode, flags / cap */
	__u32 event_id;
	__u32 pid;     /* tgid, pid namespace of the task */
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 mnt_ns;
	char comm[16];
	__u16 stack_n;
	__u16 payload_len;
	__u32 flags;
	__u8 payload[REC_MAX - REC_HDR];
};

_Static_assert(__builtin_offsetof(struct rec, payload) == REC_HDR, "REC_HDR");
#endif

#endif
