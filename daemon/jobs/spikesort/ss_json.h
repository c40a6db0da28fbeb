/*
 * ss_json.h — just enough JSON for probe files (objects, arrays, numbers,
 * strings, true/false/null), bounded depth, no allocation per token beyond
 * the tree itself.
 */
#ifndef SS_JSON_H
#define SS_JSON_H

#include <stddef.h>

enum ssj_kind { SSJ_NULL, SSJ_BOOL, SSJ_NUM, SSJ_STR, SSJ_ARR, SSJ_OBJ };

struct ssj {
	enum ssj_kind kind;
	double num;
	char *str; /* SSJ_STR (unescaped, simple escapes only) */
	size_t n;  /* children of ARR/OBJ */
	struct ssj *items;
	char **keys; /* OBJ */
};

/* 0 or -1 with a message naming the byte offset. */
int ssj_parse(const char *text, size_t len, struct ssj *out, char *msg,
              size_t msglen);
void ssj_free(struct ssj *j);
const struct ssj *ssj_get(const struct ssj *obj, const char *key);

#endif
