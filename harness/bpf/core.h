/* The few kernel types drops.bpf.c reads, for CO-RE: field offsets are relocated at load time
 * against the running kernel's BTF (preserve_access_index), so this minimal header stands in
 * for a whole generated vmlinux.h. Checked in rather than dumped by bpftool at build time: the
 * build then needs no BTF on the build machine and no bpftool, and the object is the same
 * wherever it is built. Only names matter here, not layouts. */
#ifndef NETPATH_CORE_H
#define NETPATH_CORE_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

/* From include/uapi/linux/bpf.h (stable numbers, part of the kernel's ABI). */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	char name[16];
	int ifindex;
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

struct sock_common {
	possible_net_t skc_net;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	unsigned char *head;
	unsigned int tail; /* sk_buff_data_t: an offset from head on 64-bit kernels */
	__u16 network_header;
} __attribute__((preserve_access_index));

#endif
