/*
 * http.c — see http.h. The handlers run on NNG's threads and only read
 * struct http's published snapshot under its mutex, or park their aio and
 * wake the loop; everything that reads daemon state (metrics_build) runs
 * in http_on_wake on the loop thread.
 */
#include "http.h"

#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "nq_clock.h"
#include "nq_error.h"
#include "web_assets.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

/* A snapshot this young is served as is; after a slow build (a big
 * store) HTTP_BUILD_SHARE times its build time, so that building takes at
 * most ~5 % of the loop however often the port is asked. */
#define HTTP_FRESH_MS    1000
#define HTTP_BUILD_SHARE 20
#define HTTP_MAX_PARKED  64 /* requests waiting for the loop; more: 503 */

enum http_doc { HTTP_METRICS, HTTP_QUEUE };

struct http_route {
	struct http *h;
	enum http_doc doc;
};

struct http_parked {
	nng_aio *aio;
	enum http_doc doc;
};

struct http {
	struct daemon *d;
	nng_http_server *srv;
	uv_async_t wake; /* loop thread: build a snapshot */
	struct http_route routes[2];
	/* under mu: what the handlers see */
	uv_mutex_t mu;
	struct metrics_snapshot snap;
	int have;          /* snap holds a snapshot */
	uint64_t built_ms; /* nq_mono_ms() when it was built */
	uint64_t fresh_ms; /* served as is while younger than this */
	int closing;
	struct http_parked parked[HTTP_MAX_PARKED];
	size_t nparked;
};

static const char http_metrics_type[] =
        "text/plain; version=0.0.4; charset=utf-8";
static const char http_json_type[] = "application/json";

/* Answers aio with a copy of body (any thread). */
static void
http_reply(nng_aio *aio, uint16_t status, const char *ctype, const void *body,
           size_t len)
{
	nng_http_res *res;

	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	if (nng_http_res_set_status(res, status) != 0 ||
	    nng_http_res_set_header(res, "Content-Type", ctype) != 0 ||
	    nng_http_res_set_header(res, "Cache-Control", "no-store") != 0 ||
	    nng_http_res_set_header(res, "X-Content-Type-Options", "nosniff") !=
	            0 ||
	    nng_http_res_copy_data(res, body, len) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static void
http_reply_text(nng_aio *aio, uint16_t status, const char *text)
{
	http_reply(aio, status, "text/plain; charset=utf-8", text,
	           strlen(text));
}

/* with mu held and h->have */
static void
http_reply_snapshot(struct http *h, nng_aio *aio, enum http_doc doc)
{
	if (doc == HTTP_METRICS)
		http_reply(aio, 200, http_metrics_type, h->snap.text,
		           h->snap.text_len);
	else
		http_reply(aio, 200, http_json_type, h->snap.json,
		           h->snap.json_len);
}

/* NNG thread: /metrics and /api/queue */
static void
http_doc_cb(nng_aio *aio)
{
	nng_http_handler *hd = nng_aio_get_input(aio, 1);
	struct http_route *rt = nng_http_handler_get_data(hd);
	struct http *h = rt->h;

	uv_mutex_lock(&h->mu);
	if (h->closing) {
		uv_mutex_unlock(&h->mu);
		http_reply_text(aio, 503, "neuroqd is stopping\n");
		return;
	}
	if (h->have && nq_mono_ms() - h->built_ms < h->fresh_ms) {
		http_reply_snapshot(h, aio, rt->doc);
		uv_mutex_unlock(&h->mu);
		return;
	}
	if (h->nparked == HTTP_MAX_PARKED) {
		uv_mutex_unlock(&h->mu);
		http_reply_text(aio, 503, "too many requests in progress\n");
		return;
	}
	h->parked[h->nparked].aio = aio;
	h->parked[h->nparked].doc = rt->doc;
	h->nparked++;
	uv_async_send(&h->wake); /* thread-safe; wakes http_on_wake */
	uv_mutex_unlock(&h->mu);
}

/* NNG thread: a page asset embedded in the binary (web_assets.h) */
static void
http_asset_cb(nng_aio *aio)
{
	nng_http_handler *hd = nng_aio_get_input(aio, 1);
	const struct web_asset *a = nng_http_handler_get_data(hd);
	nng_http_res *res;

	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	/* the page loads nothing from elsewhere and runs no inline code */
	if (nng_http_res_set_header(res, "Content-Type", a->type) != 0 ||
	    nng_http_res_set_header(res, "Content-Security-Policy",
	                            "default-src 'self'; "
	                            "frame-ancestors 'none'") != 0 ||
	    nng_http_res_set_header(res, "X-Content-Type-Options", "nosniff") !=
	            0 ||
	    nng_http_res_set_header(res, "Referrer-Policy", "no-referrer") !=
	            0 ||
	    nng_http_res_set_data(res, a->data, a->len) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

/* Loop thread: build, publish, answer the parked requests. */
static void
http_on_wake(uv_async_t *a)
{
	struct http *h = a->data;
	struct metrics_snapshot s, old = {0};
	uint64_t t0 = nq_mono_ms();
	int rc = metrics_build(h->d, &s);
	uint64_t took = nq_mono_ms() - t0;

	if (rc != 0)
		log_warn("metrics snapshot failed error=%s", nq_errname(rc));
	uv_mutex_lock(&h->mu);
	if (rc == 0) {
		old = h->snap;
		h->snap = s;
		h->have = 1;
		h->built_ms = t0 + took;
		h->fresh_ms = took * HTTP_BUILD_SHARE > HTTP_FRESH_MS
		                      ? took * HTTP_BUILD_SHARE
		                      : HTTP_FRESH_MS;
	}
	for (size_t i = 0; i < h->nparked; i++) {
		if (rc == 0)
			http_reply_snapshot(h, h->parked[i].aio,
			                    h->parked[i].doc);
		else
			http_reply_text(h->parked[i].aio, 500,
			                "cannot build the snapshot\n");
	}
	h->nparked = 0;
	uv_mutex_unlock(&h->mu);
	metrics_snapshot_free(&old);
}

static int
http_add(struct http *h, const char *path, void (*cb)(nng_aio *), void *data,
         char *msg, size_t msglen)
{
	nng_http_handler *hd;
	int rv;

	if ((rv = nng_http_handler_alloc(&hd, path, cb)) != 0)
		goto fail;
	if ((rv = nng_http_handler_set_data(hd, data, NULL)) != 0 ||
	    (rv = nng_http_server_add_handler(h->srv, hd)) != 0) {
		nng_http_handler_free(hd);
		goto fail;
	}
	return 0;
fail:
	snprintf(msg, msglen, "http handler %s: %s", path, nng_strerror(rv));
	return NQ_EIO;
}

static void
http_closed(uv_handle_t *hd)
{
	struct http *h = hd->data;

	metrics_snapshot_free(&h->snap);
	uv_mutex_destroy(&h->mu);
	free(h);
}

int
http_open(struct http **out, struct daemon *d, const char *listen, char *msg,
          size_t msglen)
{
	struct http *h;
	char url_s[300];
	nng_url *url = NULL;
	nng_sockaddr sa;
	int rv, rc;

	*out = NULL;
	if (strncmp(listen, "http://", 7) == 0)
		snprintf(url_s, sizeof(url_s), "%s", listen);
	else
		snprintf(url_s, sizeof(url_s), "http://%s", listen);
	if (nng_url_parse(&url, url_s) != 0 || url->u_port == NULL ||
	    url->u_port[0] == '\0' ||
	    (strcmp(url->u_path, "") != 0 && strcmp(url->u_path, "/") != 0)) {
		if (url != NULL)
			nng_url_free(url);
		snprintf(msg, msglen,
		         "http_listen: expected host:port, got '%.200s'",
		         listen);
		return NQ_EBADPARAM;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL || uv_mutex_init(&h->mu) != 0) {
		free(h);
		nng_url_free(url);
		snprintf(msg, msglen, "out of memory");
		return NQ_ENOMEM;
	}
	h->d = d;
	/* before the server starts: a handler may wake the loop at once */
	uv_async_init(d->loop, &h->wake, http_on_wake);
	h->wake.data = h;
	rv = nng_http_server_hold(&h->srv, url);
	nng_url_free(url);
	if (rv != 0) {
		snprintf(msg, msglen, "http_listen %s: %s", url_s,
		         nng_strerror(rv));
		uv_close((uv_handle_t *) &h->wake, http_closed);
		return NQ_EIO;
	}
	for (int i = 0; i < 2; i++) {
		h->routes[i].h = h;
		h->routes[i].doc = i == 0 ? HTTP_METRICS : HTTP_QUEUE;
	}
	rc = http_add(h, "/metrics", http_doc_cb, &h->routes[0], msg, msglen);
	if (rc == 0)
		rc = http_add(h, "/api/queue", http_doc_cb, &h->routes[1], msg,
		              msglen);
	for (size_t i = 0; rc == 0 && i < web_nassets; i++)
		rc = http_add(h, web_assets[i].path, http_asset_cb,
		              (void *) &web_assets[i], msg, msglen);
	if (rc == 0 && (rv = nng_http_server_start(h->srv)) != 0) {
		snprintf(msg, msglen, "http_listen %s: %s", url_s,
		         nng_strerror(rv));
		rc = NQ_EIO;
	}
	if (rc != 0) {
		nng_http_server_release(h->srv);
		uv_close((uv_handle_t *) &h->wake, http_closed);
		return rc;
	}
	if (nng_http_server_get_addr(h->srv, &sa) == 0 &&
	    sa.s_family == NNG_AF_INET) {
		char ip[INET_ADDRSTRLEN] = "?";
		inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip));
		log_info("http listening url=http://%s:%u", ip,
		         (unsigned) ntohs(sa.s_in.sa_port));
	} else {
		log_info("http listening url=%s", url_s);
	}
	*out = h;
	return 0;
}

void
http_close(struct http *h)
{
	if (h == NULL)
		return;
	uv_mutex_lock(&h->mu);
	h->closing = 1;
	for (size_t i = 0; i < h->nparked; i++)
		http_reply_text(h->parked[i].aio, 503, "neuroqd is stopping\n");
	h->nparked = 0;
	uv_mutex_unlock(&h->mu);
	/* handlers running now see closing; none runs after this */
	nng_http_server_stop(h->srv);
	nng_http_server_release(h->srv);
	uv_close((uv_handle_t *) &h->wake, http_closed);
}
