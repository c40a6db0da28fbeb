/*
 * ops.h — the request handlers of proto/PROTOCOL.md, one per op. server.c
 * dispatches a decoded request (r->m, r->out ready) to one of them; each
 * returns 0 (r->out holds the reply fields), an nq_error code with r->msg,
 * or REQ_DEFERRED when a work item answers later (request.h).
 *
 *   ops_info.c    hello, devices, queue, describe
 *   ops_submit.c  submit, reserve (room in max_upload_bytes for one)
 *   ops_jobs.c    status, list, cancel, result, logs
 */
#ifndef OPS_H
#define OPS_H

struct req;

int ops_hello(struct req *r);
int ops_devices(struct req *r);
int ops_queue(struct req *r);
int ops_describe(struct req *r);
int ops_submit(struct req *r);
int ops_reserve(struct req *r);
int ops_status(struct req *r);
int ops_list(struct req *r);
int ops_cancel(struct req *r);
int ops_result(struct req *r);
int ops_logs(struct req *r);

#endif
