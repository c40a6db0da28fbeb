/*
 * request.h — one request from its receipt to its reply, for the op
 * handlers (ops.h): the error message, the reply fields, and work items in
 * libuv's threadpool. server.c receives and dispatches; request.c answers.
 *
 * Cheap requests are answered on the loop thread. The big ones do their
 * bulk work in the threadpool and answer from the after-work callback on
 * the loop thread. A work item touches only its own request (and copies of
 * what it needs), never the store, the scheduler or the workers; the loop
 * keeps the order "files, then row".
 */
#ifndef REQUEST_H
#define REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "job_type.h"
#include "nq_value.h"
#include "scheduler.h"

struct daemon;
struct net_req;
struct net_msg;

/* an op's return value: a work item answers the request later */
#define REQ_DEFERRED (-1)

/* One request, from receipt to its reply. The loop thread owns it, except
 * while its work item runs in the threadpool (then only that thread). */
struct req {
	struct daemon *d;
	struct net_req *nr;
	uint32_t uid;
	void *body; /* valid until req_release_body / the reply; decoded in
	             * place (val's big arrays point into it) */
	size_t len;
	struct nq_value val;     /* the decoded request */
	const struct nq_map *m;  /* its map */
	const char *op;          /* in val */
	struct nq_map *out;      /* reply fields */
	struct net_msg *encoded; /* a reply a work item encoded */
	char *msg;               /* error message */
	size_t msglen;
	char msgbuf[1024];
	/* the work item */
	uv_work_t work;
	int (*work_fn)(struct req *r);          /* threadpool */
	int (*after_fn)(struct req *r, int rc); /* loop thread */
	int work_rc;
	char path[4096]; /* submit: state dir; result: job dir */
	/* submit, between its checks and its staging's end */
	const struct nq_map *params, *inputs;
	struct nq_map *empty, *empty_in;
	const struct job_type *jt;
	struct job_estimate est;
	struct sched_job sj;
	char idem[128];
	char tmp[4096];
	unsigned delay_ms;
	unsigned umask; /* the owner's (submit's "umask", default 022) */
	int check_rc;   /* the submit-time check's failure, once staged */
	/* the job's time limit, after the default and the max (liveness.h) */
	int64_t time_limit_s;
	/* result */
	int64_t id;
	const struct nq_value *names;
};

/* A new request (its message buffer set up); NULL when out of memory. */
struct req *req_new(struct daemon *d, struct net_req *nr, uint32_t uid,
                    void *body, size_t len);
/* The decoded request and the message it was decoded from go now (not at
 * the reply), and stop counting towards max_upload_bytes: once the op has
 * what it needs (submit: its inputs are on disk). On the thread that has
 * r. */
void req_release_body(struct req *r);
/* Format the error message; returns code. */
int req_fail(struct req *r, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Run work(r) in the threadpool, then after(r, its rc) on the loop thread;
 * REQ_DEFERRED (after's result answers r). While stopping, or if the pool
 * refuses, both run here and now. */
int req_defer(struct req *r, int (*work)(struct req *r),
              int (*after)(struct req *r, int rc));
/* Answer r (with r->out, r->encoded, or the error rc and r->msg) and free
 * it. */
void req_finish(struct req *r, int rc);
/* Shutting down and nothing in flight: run d->quiet once. */
void req_check_quiet(struct daemon *d);

#endif
