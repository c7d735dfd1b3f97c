/* Payloads on which the canonical JSON is easy to get wrong, for
 * test_journal.c: unicode, escapes, control bytes, key order by bytes,
 * nesting, big integers, reals. Each is read with json_loads(0) (NUL in
 * strings is tested apart: the journal cannot read such a payload back). CANONICAL_CASE_HASHES are the event hashes
 * the journal of main at commit f6b4bb1 (canonical JSON by json_dumps,
 * one EVP_DigestUpdate per field) gave these payloads, appended as seq 1..
 * to run "01HZXTESTRUN00000000000001" with kind "k", state "s/é", attempt
 * i, time_ms 1700000000000 + i: the new code must give the same bytes. */
#ifndef CAIRN_TEST_CANONICAL_CASES_H
#define CAIRN_TEST_CANONICAL_CASES_H

static const char *const canonical_cases[] = {
  "{}",
  "{\"b\": 1, \"a\": 2, \"B\": 3, \"_\": 4, \"aa\": 5, \"a0\": 6}",
  "{\"s\": \"caf\\u00e9 \\u65e5\\u672c \\ud83d\\ude00 \\u2028\\u2029\"}",
  "{\"esc\": \"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t \\u0001\\u001f\\u007f\"}",
  "{\"ctl\": \"a\\u0002b\\u001e\", \"k\\u0001\": 1, \"k\": 2}",
  "{\"\\u00e9\": 1, \"z\": 2, \"\\u00c9\": 3, \"\\ud83d\\ude00\": 4, "
  "\"\": 5}",
  "{\"n\": {\"y\": [1, {\"b\": [], \"a\": {}}, [[]]], \"x\": null}, "
  "\"t\": true, \"f\": false}",
  "{\"max\": 9223372036854775807, \"min\": -9223372036854775808, "
  "\"zero\": 0, \"neg\": -1}",
  "{\"r\": [1.5, 0.1, -0.0, 3.0, 1e300, 1e-07, 123456789.123456789, "
  "2.5e-300, -17.25, 100000000000000000000.0]}",
  "{\"outputs\": {\"exit_code\": 0, \"json\": {}}, \"outcome\": "
  "\"succeeded\", \"error\": \"state 's' failed: \\\"x\\\"\\n\"}",
  "{\"deep\": [[[[[[[[[[[[[[[[{\"k\": \"v\"}]]]]]]]]]]]]]]]]}",
  "{\"many\": {\"k40\": 40, \"k39\": 39, \"k38\": 38, \"k37\": 37, \"k36\": 36, "
  "\"k35\": 35, \"k34\": 34, \"k33\": 33, \"k32\": 32, \"k31\": 31, \"k30\": 30, "
  "\"k29\": 29, \"k28\": 28, \"k27\": 27, \"k26\": 26, \"k25\": 25, \"k24\": 24, "
  "\"k23\": 23, \"k22\": 22, \"k21\": 21, \"k20\": 20, \"k19\": 19, \"k18\": 18, "
  "\"k17\": 17, \"k16\": 16, \"k15\": 15, \"k14\": 14, \"k13\": 13, \"k12\": 12, "
  "\"k11\": 11, \"k10\": 10, \"k9\": 9, \"k8\": 8, \"k7\": 7, \"k6\": 6, "
  "\"k5\": 5, \"k4\": 4, \"k3\": 3, \"k2\": 2, \"k1\": 1, \"k0\": 0}}",
};

#define CANONICAL_NCASES (sizeof canonical_cases / sizeof canonical_cases[0])

#endif
