/*
 * LD_PRELOAD shim: sets TCP_NODELAY on every TCP socket accepted through
 * accept(2) / accept4(2).
 *
 * Garage 2.5 never sets TCP_NODELAY on its S3 sockets, so a small response
 * written in two pieces waits for the client's delayed ACK (~40 ms): every GET
 * stalls. Benchmarks preload this library into Garage so that they measure
 * the store, not Nagle's algorithm.
 *
 *   gcc -O2 -shared -fPIC -o libnodelay.so nodelay.c -ldl
 *   LD_PRELOAD=$PWD/libnodelay.so garage ...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void set_nodelay(int fd)
{
    if (fd < 0)
        return;
    int one = 1;
    /* Fails harmlessly (ENOTSUP/EOPNOTSUPP) on non-TCP sockets. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real)
        real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    int c = real(fd, addr, len);
    set_nodelay(c);
    return c;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real)
        real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    int c = real(fd, addr, len, flags);
    set_nodelay(c);
    return c;
}
