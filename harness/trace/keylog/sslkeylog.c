/*
 * TLS key log for processes that use OpenSSL 3 (libssl.so.3), loaded with LD_PRELOAD.
 *
 * Every SSL_CTX the process creates gets a key-log callback that appends each secret OpenSSL
 * derives, as one line of the NSS key log format (what Wireshark and tshark read), to the file
 * named by INTEROP_SSLKEYLOGFILE. Without that variable the shim changes nothing.
 *
 * Why SSL_CTX_new and not SSL_new: a server that picks its certificate by SNI moves the
 * connection to another SSL_CTX (SSL_set_SSL_CTX) before the secrets are derived, and OpenSSL
 * calls the callback of the SSL_CTX the connection has at that time; so every context needs it.
 * A program that sets a callback of its own later keeps its own.
 *
 * The shim is not linked against libssl: in a process that never loads it (a shell, runuser,
 * epmd) it stays inert. The real functions are looked up in the libssl.so.3 already loaded,
 * because a library a program dlopen()ed privately (LuaSec under Lua, fast_tls as an Erlang
 * NIF) is not in the scope RTLD_NEXT searches.
 *
 * Several processes and threads may share the file: each line goes out with one writev() on a
 * descriptor opened with O_APPEND, so lines never interleave.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/ssl.h>

#define KEYLOG_FILE_VARIABLE "INTEROP_SSLKEYLOGFILE"
#define LIBSSL "libssl.so.3"

typedef SSL_CTX *(*ctx_new_fn)(const SSL_METHOD *);
typedef SSL_CTX *(*ctx_new_ex_fn)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *);
typedef void (*set_keylog_fn)(SSL_CTX *, SSL_CTX_keylog_cb_func);

static ctx_new_fn real_ctx_new;
static ctx_new_ex_fn real_ctx_new_ex;
static set_keylog_fn real_set_keylog;
static pthread_once_t resolved = PTHREAD_ONCE_INIT;

static void *libssl_function(void *libssl, const char *name)
{
    void *function = libssl != NULL ? dlsym(libssl, name) : NULL;
    return function != NULL ? function : dlsym(RTLD_NEXT, name);
}

static void resolve(void)
{
    /* RTLD_NOLOAD: only a handle on the copy the program loaded, never a second one. */
    void *libssl = dlopen(LIBSSL, RTLD_LAZY | RTLD_NOLOAD);
    real_ctx_new = (ctx_new_fn)libssl_function(libssl, "SSL_CTX_new");
    real_ctx_new_ex = (ctx_new_ex_fn)libssl_function(libssl, "SSL_CTX_new_ex");
    real_set_keylog = (set_keylog_fn)libssl_function(libssl, "SSL_CTX_set_keylog_callback");
}

static void append_line(const SSL *ssl, const char *line)
{
    (void)ssl;
    const char *path = getenv(KEYLOG_FILE_VARIABLE);
    if (path == NULL || *path == '\0')
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    struct iovec parts[2] = {{(void *)line, strlen(line)}, {(void *)"\n", 1}};
    (void)writev(fd, parts, 2); /* a lost line leaves one stream unreadable, nothing more */
    close(fd);
}

static SSL_CTX *with_key_log(SSL_CTX *ctx)
{
    if (ctx != NULL && real_set_keylog != NULL && getenv(KEYLOG_FILE_VARIABLE) != NULL)
        real_set_keylog(ctx, append_line);
    return ctx;
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method)
{
    pthread_once(&resolved, resolve);
    return real_ctx_new != NULL ? with_key_log(real_ctx_new(method)) : NULL;
}

SSL_CTX *SSL_CTX_new_ex(OSSL_LIB_CTX *libctx, const char *propq, const SSL_METHOD *method)
{
    pthread_once(&resolved, resolve);
    return real_ctx_new_ex != NULL ? with_key_log(real_ctx_new_ex(libctx, propq, method)) : NULL;
}
