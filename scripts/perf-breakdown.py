#!/usr/bin/env python3
"""Breaks a sidecar CPU profile down by where the time goes (inclusive shares).

    perf record -e cpu-clock -F 2000 --call-graph dwarf,16384 -p <sidecar pid> -o s.data -- sleep 5
    perf script -i s.data > s.txt
    python3 scripts/perf-breakdown.py s.txt

Used for the tables in docs/performance.md ("Profiles").
"""
import re,collections,sys
samples=[];cur=[]
for line in open(sys.argv[1],errors='replace'):
    if not line.strip():
        if cur: samples.append(cur); cur=[]
        continue
    if line[0] not in ' \t': cur=[]; continue
    cur.append(re.sub(r'^[0-9a-f]+ ','',line.strip()))
if cur: samples.append(cur)
n=len(samples)
def has(s,*pats): return any(any(p in f for p in pats) for f in s)
B=[
 ("kernel (all)", lambda s: 'kallsyms' in s[0]),
 ("  writev/write syscalls", lambda s: has(s,'do_writev','ksys_write')),
 ("  recvfrom syscalls", lambda s: has(s,'__x64_sys_recvfrom')),
 ("  epoll_wait", lambda s: has(s,'__x64_sys_epoll_wait')),
 ("  futex", lambda s: has(s,'__x64_sys_futex')),
 ("outbound client conn task (hyper client dispatch)", lambda s: has(s,'dispatch::Client')),
 ("inbound server conn task", lambda s: has(s,'GracefulConnectionFuture')),
 ("  hyper server parse", lambda s: has(s,'role::Server as hyper::proto::h1::Http1Transaction>::parse')),
 ("  s3s prepare (parse request into input, auth)", lambda s: has(s,'s3s::ops::prepare')),
 ("    SigV4 verification (s3s)", lambda s: has(s,'SignatureContext','v4_check','sig_v4')),
 ("  s3s op call (our handler)", lambda s: has(s,'as s3s::ops::Operation>::call')),
 ("    residency-tower (routing layer, dispatch)", lambda s: has(s,'residency_tower')),
 ("      audit record build", lambda s: has(s,'audit') and has(s,'residency_tower::layer','RoutingService')),
 ("      metrics", lambda s: has(s,'metrics::')),
 ("    backend put/get (store)", lambda s: has(s,'residency_store')),
 ("      lean path: build + sign request", lambda s: has(s,'s3_fast::FastPath::request','lean::LeanPath::request')),
 ("      hyper_util send_request", lambda s: has(s,'hyper_util::client::legacy::client::Client<C,B>::send_request')),
 ("      null backend drain", lambda s: has(s,'NullBackend')),
 ("audit batch worker (JSON, chain, write)", lambda s: has(s,'audit::batch')),
 ("scheduler park/unpark", lambda s: has(s,'park_internal','park_timeout','Parker')),
 ("  thread wake-ups (futex wake, eventfd write: waking another thread)", lambda s: has(s,'futex_wake','eventfd_write')),
 ("malloc/free (self)", lambda s: bool(re.search(r'malloc|_int_free|cfree|tcache',s[0]))),
]
print("samples",n)
for name,fn in B:
    k=sum(1 for s in samples if fn(s))
    print(f"{100*k/n:5.1f}%  {name}")
