/*
 * params.h — a job type described by one declarative table: its parameters
 * (type, default, range or choices, meaning), its inputs (dtypes, shape in
 * symbols) and its outputs (dtype, shape in the same symbols, when present).
 *
 * The table is the contract: params_check() does every per-parameter check
 * of a submit from it (unknown names and unknown inputs refused, types,
 * ranges, choices, required inputs, input dtypes and dimensions), the
 * getters give a given value or the table's default, params_describe()
 * serves it (the protocol's `describe` op, `neuroq-worker describe`, the
 * generated docs), so docs and behaviour cannot drift apart. A job type's
 * validate() calls params_check() first and keeps only its cross-field
 * checks (spikesort: `recording` or `data`, hp_hz below the Nyquist rate).
 */
#ifndef PARAMS_H
#define PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "nq_value.h"

enum param_type {
	PARAM_BOOL,   /* true/false (or int 0/1) */
	PARAM_INT,    /* an int in [ilo, ihi] */
	PARAM_FLOAT,  /* a number (int accepted) in [lo, hi] */
	PARAM_STR,    /* a string; with choices: one of them */
	PARAM_PATH,   /* a string naming a file of the job's owner */
	PARAM_FLOATS, /* a list of numbers or a 1-D float array: ilo..ihi
	               * items, each in [lo, hi] */
	PARAM_STRS,   /* a string or a list of strings, each one of choices */
};

struct param_def {
	const char *name;
	enum param_type type;
	int has_def;                /* a constant default: def_num, def_str */
	double lo, hi;              /* FLOAT, FLOATS' items */
	int64_t ilo, ihi;           /* INT; FLOATS: how many items */
	const char *const *choices; /* STR, STRS: NULL-terminated, or NULL */
	double def_num;             /* BOOL (0/1), INT, FLOAT */
	const char *def_str;        /* STR, PATH; STRS: names split by ' ' */
	/* no constant default: what decides the value ("the dtype of data",
	 * "from the recording's SpikeGLX .meta"); NULL: none, i.e. absent */
	const char *def_text;
	const char *doc; /* one line */
};

/* An input array. dtypes: bit (1u << enum nq_dtype) per accepted dtype. */
struct input_def {
	const char *name;
	unsigned dtypes;
	const char *shape; /* symbols split by ' ', e.g. "N C T" */
	int required;
	const char *doc;
};

enum output_kind {
	OUT_ARRAY,
	OUT_INT,
	OUT_FLOAT,
	OUT_BOOL,
	OUT_STR,
	OUT_STRS, /* a list of strings */
};

struct output_def {
	const char *name;
	enum output_kind kind;
	unsigned dtypes;   /* OUT_ARRAY: possible dtypes, as inputs' */
	const char *shape; /* OUT_ARRAY: "N N", "1 N", "K" */
	const char *when;  /* NULL: always; else when it is present */
	const char *doc;
};

struct shape_symbol {
	const char *name; /* "N" */
	const char *doc;  /* "units (data's first dimension)" */
};

struct job_desc {
	const char *summary; /* one line */
	/* 1: a nil param means its default (gsn, as GSN 1.2's None); 0: nil
	 * is a value of the wrong type (EBADPARAM) */
	int nil_is_default;
	const struct param_def *params;
	size_t nparams;
	const struct input_def *inputs;
	size_t ninputs;
	const struct output_def *outputs;
	size_t noutputs;
	const struct shape_symbol *symbols;
	size_t nsymbols;
};

#define PARAMS_DT(dt) (1u << (unsigned) (dt))

/* Every per-parameter check of params and inputs against the table: 0, or
 * NQ_EBADPARAM (an unknown parameter or input, a wrong type, a value out of
 * range or not among the choices) or NQ_EBADARRAY (a required input
 * missing, an input that is not an array or has the wrong dtype or number
 * of dimensions), with msg naming the parameter or input and what it must
 * be. type_name is the job type's, for messages. */
int params_check(const struct job_desc *d, const char *type_name,
                 const struct nq_map *params, const struct nq_map *inputs,
                 char *msg, size_t msglen);

const struct param_def *params_find(const struct job_desc *d, const char *name);
/* The value given for name, or NULL: absent, or nil when nil means the
 * default. */
const struct nq_value *params_given(const struct job_desc *d,
                                    const struct nq_map *params,
                                    const char *name);
/* After params_check() passed: the value given, else the table's default
 * (0 / NULL where the table has no constant one). */
int params_bool(const struct job_desc *d, const struct nq_map *params,
                const char *name);
int64_t params_int(const struct job_desc *d, const struct nq_map *params,
                   const char *name);
double params_float(const struct job_desc *d, const struct nq_map *params,
                    const char *name);
const char *params_str(const struct job_desc *d, const struct nq_map *params,
                       const char *name);
/* STR with choices: the index of the value (or of the default) in choices;
 * -1 when neither. */
int params_choice(const struct job_desc *d, const struct nq_map *params,
                  const char *name);

/* The table as a map: {"name", "summary", "nil", "symbols", "params",
 * "inputs", "outputs"} (proto/PROTOCOL.md, describe); outputs end with
 * the two every job gets from neuroq-worker, time_s and device. 0 or
 * NQ_ENOMEM. */
int params_describe(const struct job_desc *d, const char *type_name,
                    struct nq_value *out);

#endif
