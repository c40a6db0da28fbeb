/*
 * web_assets.h — the queue page's files (daemon/web/), embedded in neuroqd
 * at build time by embed.cmake (web_assets.c in the build tree): no files
 * to install beside the binary, no build step for the page itself.
 */
#ifndef WEB_ASSETS_H
#define WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
	const char *path; /* "/", "/app.js" */
	const char *type; /* Content-Type */
	const unsigned char *data;
	size_t len;
};

extern const struct web_asset web_assets[];
extern const size_t web_nassets;

#endif
