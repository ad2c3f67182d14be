/* netpath's drop source: every packet the kernel frees as dropped (tracepoint skb:kfree_skb)
 * that belongs to one of this run's network namespaces and looks like a probe packet, sent to
 * userspace with the drop reason, the dropping function, the netns, the device and the first
 * bytes from its IP header. Userspace recognises the probe packet exactly (by its nonce, ICMP
 * id/sequence, TCP sequence); here the filter only keeps the ring buffer quiet. */
#include "core.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define HEAD_BYTES 128

/* Shared with src/observe/kdrop/event.rs: keep the two in step. */
struct drop_event {
	__u64 location;
	__u64 ktime;
	__u32 reason;
	__u32 netns;
	__s32 ifindex;
	__u32 caplen;
	char dev[16];
	__u8 head[HEAD_BYTES];
};

/* The run's network namespaces, by inode: filled by userspace before attaching. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} netns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* Events the ring buffer had no room for: a non-zero count makes the evidence incomplete. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ICMPV6 58

/* "netpath-" as the 8 bytes a little-endian load of it gives: every probe nonce starts so. */
#define TAG 0x2d6874617074656eULL

static __always_inline int looks_like_probe(const unsigned char *ip)
{
	__u8 first = 0, proto = 0;
	__u32 l4;
	if (bpf_probe_read_kernel(&first, 1, ip))
		return 0;
	if ((first >> 4) == 4) {
		if (bpf_probe_read_kernel(&proto, 1, ip + 9))
			return 0;
		l4 = (first & 0xf) * 4;
	} else if ((first >> 4) == 6) {
		/* Extension headers are not followed: probes send none. */
		if (bpf_probe_read_kernel(&proto, 1, ip + 6))
			return 0;
		l4 = 40;
	} else {
		return 0;
	}
	if (proto == IPPROTO_TCP)
		return 1;
	__u8 type = 0;
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		if (bpf_probe_read_kernel(&type, 1, ip + l4))
			return 0;
		/* Errors quote the packet they answer: destination unreachable, time exceeded,
		 * packet too big, of either family. */
		if (type == 3 || type == 11 || type == 1 || type == 2)
			return 1;
	} else if (proto != IPPROTO_UDP) {
		return 0;
	}
	/* Echo requests and replies, and UDP datagrams: the payload starts with the nonce (a
	 * server's answer with "reply "; its probe's request is the one waited for). */
	__u64 tag = 0;
	if (bpf_probe_read_kernel(&tag, 8, ip + l4 + 8))
		return 0;
	return tag == TAG || (tag & 0xffffffffffffULL) == 0x20796c706572ULL;
}

static __always_inline __u32 netns_of(struct sk_buff *skb, int *ifindex)
{
	struct net_device *d = BPF_CORE_READ(skb, dev);
	if (d) {
		*ifindex = BPF_CORE_READ(d, ifindex);
		return BPF_CORE_READ(d, nd_net.net, ns.inum);
	}
	struct sock *sk = BPF_CORE_READ(skb, sk);
	if (sk)
		return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	return 0;
}

static __always_inline int handle(struct sk_buff *skb, void *location, __u32 reason)
{
	int ifindex = 0;
	__u32 ns = netns_of(skb, &ifindex);
	if (!ns || !bpf_map_lookup_elem(&netns, &ns))
		return 0;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u32 tail = BPF_CORE_READ(skb, tail);
	if (!head || nh == (__u16)~0U || tail <= nh)
		return 0;
	unsigned char *ip = head + nh;
	if (!looks_like_probe(ip))
		return 0;
	struct drop_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&lost, &zero);
		if (n)
			*n += 1;
		return 0;
	}
	e->location = (__u64)location;
	e->ktime = bpf_ktime_get_ns();
	e->reason = reason;
	e->netns = ns;
	e->ifindex = ifindex;
	__u32 len = tail - nh;
	e->caplen = len > HEAD_BYTES ? HEAD_BYTES : len;
	__builtin_memset(e->dev, 0, sizeof(e->dev));
	struct net_device *d = BPF_CORE_READ(skb, dev);
	if (d)
		bpf_core_read_str(e->dev, sizeof(e->dev), &d->name);
	if (bpf_probe_read_kernel(e->head, HEAD_BYTES, ip))
		__builtin_memset(e->head, 0, HEAD_BYTES);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* Linux 5.17 and later: kfree_skb(skb, location, reason[, rx_sk]). */
SEC("raw_tp/kfree_skb")
int kfree_skb_reason(__u64 *ctx)
{
	return handle((struct sk_buff *)ctx[0], (void *)ctx[1], (__u32)ctx[2]);
}

/* Before 5.17 the tracepoint has no reason: reading ctx[2] would fail the attach. */
SEC("raw_tp/kfree_skb")
int kfree_skb_location(__u64 *ctx)
{
	return handle((struct sk_buff *)ctx[0], (void *)ctx[1], 0);
}
