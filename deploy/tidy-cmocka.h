/* Included by deploy/lint.sh into every clang-tidy translation unit (never
 * compiled): cmocka's _fail and _skip (fail_msg, assert_*, skip) do not
 * return, they longjmp back to the runner, but cmocka.h does not say so,
 * and the analyzer then reports the NULL a test has just checked for. */
void _fail(const char *file, int line) __attribute__((noreturn));
void _skip(const char *file, int line) __attribute__((noreturn));
