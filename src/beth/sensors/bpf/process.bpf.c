// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* beth's process sensor, kernel side: Tracee v0.5-style events from BTF tracepoints only.
 *
 * Syscall events come from the raw sys_exit tracepoint: on x86_64 the argument registers are still
 * intact at exit, so one program sees the arguments, the return value and the (still mapped) user
 * memory they point to. execve/execveat are captured at sys_enter (their memory is gone after a
 * successful exec) and emitted at exit with the return value. The Tracee "security_*" hooks become:
 * security_file_open <- a successful open/openat/openat2/creat exit, security_inode_unlink <- a
 * successful unlink/unlinkat exit, security_sb_mount <- a successful mount exit, security_bprm_check
 * <- sched_process_exec; cap_capable and sched_process_exit come from their own tracepoints.
 *
 * Records go to one BPF ring buffer (see process.h for the layout); a failed reservation is counted
 * per CPU in `counters`, never dropped silently. Build: `make bpf`.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "process.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200
#define TS_COMPAT 0x0002
#define SYS_EXECVE 59
#define SYS_EXIT 60
#define SYS_EXIT_GROUP 231
#define SYS_UNLINK 87
#define SYS_UNLINKAT 263
#define SYS_EXECVEAT 322
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define PATH_END 8190 /* paths are assembled backwards, ending here, in the path scratch buffer */
#define PATH_MASK 8191 /* a no-op on valid offsets; it shows the verifier the bound */

const volatile struct config cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 20); /* set by the loader */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_KEYS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SYSCALL);
	__type(key, __u32);
	__type(value, struct sc_cfg);
} syscall_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} uid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, char[16]);
	__type(value, __u8);
} comm_filter SEC(".maps");

/* Per-CPU scratch: 0 = the syscall record, 1 = a derived record, 2 = path assembly. The programs run
 * with preemption disabled (non-sleepable tracing programs), so one CPU never interleaves two users. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, struct rec);
} scratch SEC(".maps");

/* Functions that check a capability without auditing it (filled from /proc/kallsyms by the loader).
 * Tracee's cap_capable kprobe skipped those checks (CAP_OPT_NOAUDIT); the tracepoint does not say, so
 * the kernel stack tells: a check called from one of these is not reported. Without it, every
 * writable mmap of a process shows up as a CAP_SYS_ADMIN check (cap_vm_enough_memory). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_NOAUDIT);
	__type(key, __u32);
	__type(value, struct text_range);
} noaudit_ranges SEC(".maps");

/* execve/execveat records between sys_enter and sys_exit, keyed by tgid (the thread id can change
 * during exec, the tgid cannot). LRU: a task killed mid-exec cannot leak an entry forever. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct rec);
} exec_pending SEC(".maps");

static __always_inline struct rec *scratch_rec(__u32 key)
{
	return bpf_map_lookup_elem(&scratch, &key);
}

static __always_inline void count(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &key);
	if (v)
		*v += 1;
}

static __always_inline bool skip_task(__u32 tgid)
{
	if (cfg.self_tgid && tgid == cfg.self_tgid)
		return true;
	if ((cfg.filters & FILTER_PIDS) && !bpf_map_lookup_elem(&pid_filter, &tgid))
		return true;
	if (cfg.filters & FILTER_UIDS) {
		__u32 uid = (__u32)bpf_get_current_uid_gid();
		if (!bpf_map_lookup_elem(&uid_filter, &uid))
			return true;
	}
	if (cfg.filters & FILTER_COMMS) {
		char comm[16] = {};
		bpf_get_current_comm(comm, sizeof(comm));
		if (!bpf_map_lookup_elem(&comm_filter, comm))
			return true;
	}
	return false;
}

static __always_inline bool is_compat(struct task_struct *task)
{
	if (bpf_core_field_exists(task->thread_info.status))
		return task->thread_info.status & TS_COMPAT;
	return false;
}

/* pid number of `p` in the pid namespace at `level`. */
static __always_inline __u32 pid_nr_at(struct pid *p, __u32 level)
{
	int nr = 0;
	bpf_core_read(&nr, sizeof(nr), &p->numbers[level].nr);
	return nr;
}

/* Header fields of the current task: ids as seen inside its own pid namespace (like getpid(),
 * gettid(), getppid() there), uid in the initial user namespace, mount namespace inode, comm.
 * `task` is a BTF pointer: its fields are read with direct (fault-safe) loads, not helper calls. */
static __always_inline void fill_header(struct rec *r, struct task_struct *task, __u32 event_id, __s64 ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct pid *tp = task->thread_pid;
	__u32 level = tp->level;

	r->ts = bpf_ktime_get_boot_ns();
	r->ret = ret;
	r->event_id = event_id;
	r->uid = (__u32)bpf_get_current_uid_gid();
	r->flags = 0;
	r->stack_n = 0;
	r->payload_len = 0;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	r->mnt_ns = task->nsproxy->mnt_ns->ns.inum;
	if (level == 0) {
		r->pid = pid_tgid >> 32;
		r->tid = (__u32)pid_tgid;
		r->ppid = task->real_parent->tgid;
		return;
	}
	r->tid = pid_nr_at(tp, level);
	r->pid = pid_nr_at(BPF_CORE_READ(task, group_leader, thread_pid), level);
	struct pid *pp = BPF_CORE_READ(task, real_parent, group_leader, thread_pid);
	__u32 plevel = BPF_CORE_READ(pp, level);
	r->ppid = 0; /* a parent outside the task's pid namespace shows as 0, as getppid() says */
	if (plevel >= level) {
		struct pid_namespace *ns = NULL, *pns = NULL;
		bpf_core_read(&ns, sizeof(ns), &tp->numbers[level].ns);
		bpf_core_read(&pns, sizeof(pns), &pp->numbers[level].ns);
		if (ns == pns)
			r->ppid = pid_nr_at(pp, level);
	}
}

static __always_inline void put_u16(__u8 *dst, __u32 v)
{
	dst[0] = v & 0xff;
	dst[1] = (v >> 8) & 0xff;
}

/* The put_* helpers are global (non-inlined) BPF functions: the verifier checks each once, instead of
 * at every call site in every program (which made loading take seconds). They take user and kernel
 * addresses as plain integers, and bound the offset they are given themselves. */

/* Append one length-prefixed user string; returns the new payload offset. */
__noinline __u64 put_str(struct rec *r, __u64 off, __u64 uptr)
{
	if (!r)
		return off;
	if (off > PAYLOAD_MAX - MAX_STR - 2) {
		r->flags |= REC_TRUNCATED;
		return off;
	}
	long n = bpf_probe_read_user_str(&r->payload[off + 2], MAX_STR, (const void *)uptr);
	if (n <= 0) {
		if (uptr)
			r->flags |= REC_FAULT;
		n = 0;
	} else {
		if (n == MAX_STR)
			r->flags |= REC_TRUNCATED;
		n -= 1; /* the NUL */
	}
	put_u16(&r->payload[off], n);
	return off + 2 + n;
}

/* Append a struct sockaddr read from user memory, as long as its family needs. */
__noinline __u64 put_sockaddr(struct rec *r, __u64 off, __u64 uaddr)
{
	const void *uptr = (const void *)uaddr;
	if (!r)
		return off;
	if (off > PAYLOAD_MAX - 128 - 2) {
		r->flags |= REC_TRUNCATED;
		return off;
	}
	__u16 family = 0;
	__u64 len = 0;
	if (uptr && bpf_probe_read_user(&family, sizeof(family), uptr) == 0) {
		len = family == AF_INET ? 16 : family == AF_INET6 ? 28 : family == AF_UNIX ? 110 : 2;
		if (bpf_probe_read_user(&r->payload[off + 2], len, uptr) != 0) {
			/* a short AF_UNIX address near the end of a page: keep the family */
			len = 2;
			__builtin_memcpy(&r->payload[off + 2], &family, 2);
		}
	} else if (uptr) {
		r->flags |= REC_FAULT;
	}
	put_u16(&r->payload[off], len);
	return off + 2 + len;
}

__noinline __u64 put_int2(struct rec *r, __u64 off, __u64 uaddr)
{
	const void *uptr = (const void *)uaddr;
	if (!r)
		return off;
	if (off > PAYLOAD_MAX - 8 - 2) {
		r->flags |= REC_TRUNCATED;
		return off;
	}
	__u64 len = 8;
	if (bpf_probe_read_user(&r->payload[off + 2], 8, uptr) != 0) {
		len = 0;
		if (uptr)
			r->flags |= REC_FAULT;
	}
	put_u16(&r->payload[off], len);
	return off + 2 + len;
}

struct argv_ctx {
	struct rec *r;
	const char *const *argv;
	__u64 off;
};

static long argv_step(__u32 i, struct argv_ctx *c)
{
	struct rec *r = c->r;
	const char *s = NULL;
	if (bpf_probe_read_user(&s, sizeof(s), &c->argv[i]) != 0) {
		r->flags |= REC_FAULT;
		return 1;
	}
	if (!s)
		return 1;
	__u64 off = c->off;
	if (off > PAYLOAD_MAX - MAX_STR || i == MAX_ARGV - 1) {
		r->flags |= REC_TRUNCATED;
		return 1;
	}
	long n = bpf_probe_read_user_str(&r->payload[off], MAX_STR, s);
	if (n <= 0) {
		r->flags |= REC_FAULT;
		return 1;
	}
	if (n == MAX_STR)
		r->flags |= REC_TRUNCATED;
	c->off = off + n;
	return 0;
}

/* Append argv: u16 total length, then each element NUL-terminated. The loops in this file run
 * through bpf_loop(): the verifier checks a callback once instead of every unrolled iteration
 * (seconds of load time otherwise). */
__noinline __u64 put_argv(struct rec *r, __u64 off, __u64 argv)
{
	if (!r)
		return off;
	if (off > PAYLOAD_MAX - 2) {
		r->flags |= REC_TRUNCATED;
		return off;
	}
	struct argv_ctx c = {.r = r, .argv = (const char *const *)argv, .off = off + 2};
	bpf_loop(MAX_ARGV, argv_step, &c, 0);
	__u64 end = c.off;
	if (end > PAYLOAD_MAX)
		return off;
	put_u16(&r->payload[off], end - off - 2);
	return end;
}

struct args_ctx {
	struct rec *r;
	const struct sc_cfg *sc;
	__u64 off;
};

static long args_step(__u32 i, struct args_ctx *c)
{
	if (i >= N_ARGS)
		return 1;
	__u8 kind = c->sc->kinds[i];
	__u64 p = c->r->args[i];
	if (kind == ARG_STR)
		c->off = put_str(c->r, c->off, p);
	else if (kind == ARG_SOCKADDR)
		c->off = put_sockaddr(c->r, c->off, p);
	else if (kind == ARG_INT2)
		c->off = put_int2(c->r, c->off, p);
	return 0;
}

/* Payload of a syscall record from its argument kinds (exit-time kinds: no argv). */
static __always_inline __u64 put_args(struct rec *r, const struct sc_cfg *sc)
{
	struct args_ctx c = {.r = r, .sc = sc, .off = 0};
	bpf_loop(N_ARGS, args_step, &c, 0);
	return c.off;
}

static __always_inline void read_regs(struct rec *r, struct pt_regs *regs)
{
	r->args[0] = regs->di;
	r->args[1] = regs->si;
	r->args[2] = regs->dx;
	r->args[3] = regs->r10;
	r->args[4] = regs->r8;
	r->args[5] = regs->r9;
}

/* Close the record: payload length, user stack after the payload; returns its size in bytes. */
static __always_inline __u32 seal(void *ctx, struct rec *r, __u64 payload_len)
{
	if (payload_len > PAYLOAD_MAX)
		payload_len = PAYLOAD_MAX;
	r->payload_len = payload_len;
	__u64 off = (payload_len + 7) & ~7ULL;
	if (off > PAYLOAD_MAX)
		return 0;
	__u32 size = REC_HDR + off;
	if (cfg.stack) {
		long n = bpf_get_stack(ctx, &r->payload[off], MAX_STACK * 8, BPF_F_USER_STACK);
		if (n > 0) {
			r->stack_n = n / 8;
			size += n & ~7U;
		}
	}
	if (r->flags & REC_TRUNCATED)
		count(CNT_TRUNCATED);
	return size;
}

static __always_inline void output(struct rec *r, __u32 size)
{
	if (size < REC_HDR || size > REC_MAX)
		return;
	/* Batched wake-ups: only the record that makes the waiting data cross the threshold wakes the
	 * reader (a wake-up is an interrupt, microseconds in a VM); the reader also polls on a short
	 * timer, so records below the threshold wait at most that long. 0: libbpf's default (wake when
	 * the reader has caught up). */
	__u64 flags = 0;
	if (cfg.wakeup_bytes) {
		__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
		flags = avail < cfg.wakeup_bytes && avail + size >= cfg.wakeup_bytes ? BPF_RB_FORCE_WAKEUP
										  : BPF_RB_NO_WAKEUP;
	}
	if (bpf_ringbuf_output(&events, r, size, flags) == 0)
		count(CNT_SENT);
	else
		count(CNT_LOST);
}

/* ---- paths ------------------------------------------------------------------------------------ */

struct walk_ctx {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct mount *mnt_parent;
	__u8 *buf;
	struct rec *r;
	__u64 pos;
};

static long walk_step(__u32 i, struct walk_ctx *c)
{
	/* locals: BPF_CORE_READ must only see kernel types, not this context struct */
	struct dentry *dentry = c->dentry;
	struct vfsmount *vfsmnt = c->vfsmnt;
	struct mount *mnt = c->mnt, *mnt_parent = c->mnt_parent;
	struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	struct dentry *d_parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == mnt_root || dentry == d_parent) {
		if (dentry != mnt_root || mnt == mnt_parent)
			return 1; /* the root of the namespace (or of a detached tree) */
		c->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		c->mnt = mnt_parent;
		c->mnt_parent = BPF_CORE_READ(mnt_parent, mnt_parent);
		c->vfsmnt = &mnt_parent->mnt;
		return 0;
	}
	struct qstr d_name = BPF_CORE_READ(dentry, d_name);
	__u64 len = d_name.len & 255;
	__u64 pos = c->pos;
	if (pos > PATH_END || pos < PATH_END - MAX_STR + 2 + len) {
		c->r->flags |= REC_TRUNCATED;
		return 1;
	}
	pos = (pos - len) & PATH_MASK;
	bpf_probe_read_kernel(&c->buf[pos], len, d_name.name);
	pos = (pos - 1) & PATH_MASK;
	c->buf[pos] = '/';
	c->pos = pos;
	c->dentry = d_parent;
	return 0;
}

/* Assemble the absolute path of `path` (as the task's mount namespace sees it) backwards in `buf`,
 * ending at PATH_END; returns its start offset. Like d_path(), without the " (deleted)" suffix. */
static __always_inline __u64 build_path(const struct path *path, __u8 *buf, struct rec *r)
{
	struct vfsmount *vfsmnt = BPF_CORE_READ(path, mnt);
	struct mount *mnt = container_of(vfsmnt, struct mount, mnt);
	struct walk_ctx c = {.buf = buf, .r = r, .pos = PATH_END, .vfsmnt = vfsmnt, .mnt = mnt};
	c.dentry = BPF_CORE_READ(path, dentry);
	c.mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
	bpf_loop(MAX_PATH_DEPTH, walk_step, &c, 0);
	__u64 pos = c.pos;
	if (pos >= PATH_END) {
		pos = PATH_END - 1;
		buf[pos] = '/';
	}
	return pos;
}

/* Append the path of `path` to the record payload at `off`. */
__noinline __u64 put_path(struct rec *r, __u64 off, __u64 path)
{
	struct rec *tmp = scratch_rec(2);
	if (!r || !tmp || off > PAYLOAD_MAX - MAX_STR - 2)
		return off;
	__u8 *buf = (__u8 *)tmp;
	__u64 pos = build_path((const struct path *)path, buf, r);
	if (pos > PATH_END)
		return off;
	__u64 len = PATH_END - pos;
	if (len > MAX_STR - 1)
		len = MAX_STR - 1;
	bpf_probe_read_kernel(&r->payload[off + 2], len, &buf[pos & PATH_MASK]);
	put_u16(&r->payload[off], len);
	return off + 2 + len;
}

static __always_inline struct file *fd_file(struct task_struct *task, __s64 fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	if (fd < 0 || fd >= max_fds)
		return NULL;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file;
}

/* ---- derived events --------------------------------------------------------------------------- */

static __always_inline void emit_file_open(void *ctx, struct task_struct *task, __s64 fd)
{
	struct file *file = fd_file(task, fd);
	struct rec *r = scratch_rec(1);
	if (!file || !r)
		return;
	fill_header(r, task, EV_FILE_OPEN, 0);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	r->aux[0] = BPF_CORE_READ(inode, i_sb, s_dev);
	r->aux[1] = BPF_CORE_READ(inode, i_ino);
	r->aux[2] = BPF_CORE_READ(file, f_flags);
	__u64 off = put_path(r, 0, (__u64)&file->f_path);
	output(r, seal(ctx, r, off));
}

static __always_inline void emit_inode_unlink(void *ctx, struct task_struct *task, struct rec *sys, __u32 id)
{
	__s64 dirfd = AT_FDCWD;
	const char *name = (const char *)sys->args[0];
	if (id == SYS_UNLINKAT) {
		if (sys->args[2] & AT_REMOVEDIR)
			return; /* rmdir: security_inode_rmdir, not unlink */
		dirfd = (int)sys->args[0];
		name = (const char *)sys->args[1];
	}
	struct rec *r = scratch_rec(1);
	if (!r)
		return;
	fill_header(r, task, EV_INODE_UNLINK, 0);
	/* payload: the name as given, then the directory it is relative to ('' when absolute) */
	__u64 off = put_str(r, 0, (__u64)name);
	char first = 0;
	bpf_probe_read_user(&first, 1, name);
	__u64 dir = 0;
	if (first != '/') {
		if (dirfd == AT_FDCWD) {
			struct fs_struct *fs = BPF_CORE_READ(task, fs);
			dir = (__u64)&fs->pwd;
		} else {
			struct file *file = fd_file(task, dirfd);
			if (file)
				dir = (__u64)&file->f_path;
		}
	}
	if (dir) {
		off = put_path(r, off, dir);
	} else if (off <= PAYLOAD_MAX - 2) {
		put_u16(&r->payload[off], 0);
		off += 2;
	}
	output(r, seal(ctx, r, off));
}

/* ---- programs --------------------------------------------------------------------------------- */

SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret)
{
	__u32 id = (__u32)regs->orig_ax;
	if (id >= MAX_SYSCALL)
		return 0;
	struct sc_cfg *sc = bpf_map_lookup_elem(&syscall_cfg, &id);
	if (!sc || !sc->flags)
		return 0;
	__u8 flags = sc->flags;
	if ((flags & SC_SKIP_CHILD) && ret == 0)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	/* execve/execveat: the record waits since sys_enter (before the compat check: exec of a 32-bit
	 * program returns in compat mode) */
	if (flags & SC_AT_ENTER) {
		struct rec *p = bpf_map_lookup_elem(&exec_pending, &tgid);
		if (!p)
			return 0;
		p->ts = bpf_ktime_get_boot_ns();
		p->ret = ret;
		__u32 size = REC_HDR + ((p->payload_len + 7) & ~7U) + p->stack_n * 8;
		if (size <= REC_MAX)
			output(p, size);
		bpf_map_delete_elem(&exec_pending, &tgid);
		return 0;
	}
	struct task_struct *task = bpf_get_current_task_btf();
	if (is_compat(task) || skip_task(tgid))
		return 0;
	if ((flags & SC_FILE_OPEN) && ret >= 0)
		emit_file_open(ctx, task, ret);

	struct rec *r = scratch_rec(0);
	if (!r)
		return 0;
	read_regs(r, regs);
	if ((flags & SC_UNLINK) && ret == 0)
		emit_inode_unlink(ctx, task, r, id);
	if (!(flags & (SC_EMIT | SC_SB_MOUNT)))
		return 0;
	fill_header(r, task, id, ret);
	__u32 size = seal(ctx, r, put_args(r, sc));
	if ((flags & SC_SB_MOUNT) && ret == 0) {
		r->event_id = EV_SB_MOUNT;
		output(r, size);
		r->event_id = id;
	}
	if (flags & SC_EMIT)
		output(r, size);
	return 0;
}

/* execve/execveat arguments before the old image is gone; exit/exit_group, which never return. */
SEC("tp_btf/sys_enter")
int BPF_PROG(on_sys_enter, struct pt_regs *regs, long id)
{
	if (id != SYS_EXECVE && id != SYS_EXECVEAT && id != SYS_EXIT && id != SYS_EXIT_GROUP)
		return 0;
	__u32 key = id;
	struct sc_cfg *sc = bpf_map_lookup_elem(&syscall_cfg, &key);
	if (!sc || !(sc->flags & SC_EMIT))
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	if (is_compat(task))
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (skip_task(tgid))
		return 0;
	struct rec *r = scratch_rec(0);
	if (!r)
		return 0;
	read_regs(r, regs);
	fill_header(r, task, key, 0);
	__u64 off = 0;
	if (id == SYS_EXECVE) {
		off = put_str(r, off, r->args[0]);
		off = put_argv(r, off, r->args[1]);
	} else if (id == SYS_EXECVEAT) {
		off = put_str(r, off, r->args[1]);
		off = put_argv(r, off, r->args[2]);
	}
	__u32 size = seal(ctx, r, off);
	if (id == SYS_EXIT || id == SYS_EXIT_GROUP)
		output(r, size);
	else
		bpf_map_update_elem(&exec_pending, &tgid, r, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct rec *pending = bpf_map_lookup_elem(&exec_pending, &tgid);
	/* an execve already accepted at enter decides; otherwise filter on the task as it is now */
	if (!pending && skip_task(tgid))
		return 0;
	struct rec *r = scratch_rec(1);
	if (!r)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	fill_header(r, task, EV_BPRM_CHECK, 0);
	if (pending) /* the name before exec, as Tracee's bprm_check hook saw it */
		__builtin_memcpy(r->comm, pending->comm, sizeof(r->comm));
	struct file *file = BPF_CORE_READ(bprm, file);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	r->aux[0] = BPF_CORE_READ(inode, i_sb, s_dev);
	r->aux[1] = BPF_CORE_READ(inode, i_ino);
	__u64 off = put_path(r, 0, (__u64)&file->f_path);
	output(r, seal(ctx, r, off));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct task_struct *task = bpf_get_current_task_btf();
	bool group_dead = BPF_CORE_READ(task, signal, live.counter) == 0;
	if ((cfg.events & EVB_PROCESS_EXIT) && !skip_task(tgid)) {
		struct rec *r = scratch_rec(1);
		if (r) {
			fill_header(r, task, EV_PROCESS_EXIT, 0);
			output(r, seal(ctx, r, 0));
		}
	}
	if (group_dead) {
		bpf_map_delete_elem(&exec_pending, &tgid);
		if (cfg.filters & FILTER_PIDS)
			bpf_map_delete_elem(&pid_filter, &tgid);
	}
	return 0;
}

/* With a pid filter, children of traced processes are traced too. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	__u8 one = 1;
	if (ptgid != ctgid && bpf_map_lookup_elem(&pid_filter, &ptgid))
		bpf_map_update_elem(&pid_filter, &ctgid, &one, BPF_ANY);
	return 0;
}

static __always_inline bool noaudit_caller(void *ctx)
{
	__u64 frames[CAP_FRAMES] = {};
	long n = bpf_get_stack(ctx, frames, sizeof(frames), 0);
	if (n <= 0)
		return false;
	for (__u32 r = 0; r < MAX_NOAUDIT; r++) {
		if (r >= cfg.noaudit_n)
			break;
		__u32 key = r;
		struct text_range *range = bpf_map_lookup_elem(&noaudit_ranges, &key);
		if (!range)
			break;
		for (int i = 0; i < CAP_FRAMES; i++)
			if (frames[i] >= range->start && frames[i] < range->end)
				return true;
	}
	return false;
}

SEC("tp_btf/cap_capable")
int BPF_PROG(on_cap_capable, const struct cred *cred, struct user_namespace *target_ns,
	     const struct user_namespace *capable_ns, int cap, int ret)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (skip_task(tgid))
		return 0;
	if (cfg.noaudit_n && noaudit_caller(ctx))
		return 0;
	struct rec *r = scratch_rec(1);
	if (!r)
		return 0;
	fill_header(r, bpf_get_current_task_btf(), EV_CAP_CAPABLE, ret);
	r->aux[0] = cap;
	output(r, seal(ctx, r, 0));
	return 0;
}
