/* fuzz_shipstate.c - fuzzes the ClickHouse shipper's state file parser,
 * state_parse() of src/analytics/ship.c (static there: this file includes
 * ship.c, and stubs the ClickHouse client and event-store calls ship.c makes
 * elsewhere, which the parser never reaches). The file lives in the data
 * directory; a copied, restored or damaged one is read at start.
 *
 * Input layout: byte 0's low bit set appends the line "sum <XXH3-64 of the
 * rest>" to the text, so that most inputs pass the checksum and reach the
 * line parser; clear, the text is taken as it is. Invariants checked:
 *  - state_parse answers 0 or PF_EFORMAT, with a message on failure;
 *  - on success every cursor has a well-formed stem and a distinct
 *    (day, stem), and every pending range has from <= to;
 *  - what it read, written back by state_write() (captured in memory rather
 *    than written to disk), parses again to the same state, and writing that
 *    gives the same bytes. */
#define fsutil_write_atomic fuzz_write_atomic
#include "analytics/ship.c"
#include "fuzz_check.h"

static char *written;
static size_t written_len;

int fuzz_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    (void)path;
    (void)mode;
    free(written);
    written = malloc(len + 1);
    if (written == NULL)
        abort();
    memcpy(written, data, len);
    written[len] = '\0';
    written_len = len;
    return 0;
}

/* ship.c's other callees: never reached from state_parse/state_write. */
void clickhouse_close(struct clickhouse *c)
{
    (void)c;
    abort();
}
const char *clickhouse_database(const struct clickhouse *c)
{
    (void)c;
    abort();
}
const char *clickhouse_where(const struct clickhouse *c)
{
    (void)c;
    abort();
}
int clickhouse_query(struct clickhouse *c, const struct clickhouse_req *req, struct strbuf *answer,
                     int *http_status, char *err, size_t errlen)
{
    (void)c, (void)req, (void)answer, (void)http_status, (void)err, (void)errlen;
    abort();
}
int evlog_list_days(const char *data_dir, const char *dataset, int64_t **days, size_t *n)
{
    (void)data_dir, (void)dataset, (void)days, (void)n;
    abort();
}
int evlog_list_segments(const char *data_dir, const char *dataset, int64_t day,
                        struct evlog_segment **segs, size_t *n)
{
    (void)data_dir, (void)dataset, (void)day, (void)segs, (void)n;
    abort();
}
int evlog_segment_read(const char *data_dir, const char *dataset, int64_t day, const char *stem,
                       size_t from, size_t until, struct event *out, size_t max,
                       struct evlog_piece *r)
{
    (void)data_dir, (void)dataset, (void)day, (void)stem, (void)from, (void)until, (void)out;
    (void)max, (void)r;
    abort();
}
int evlog_segment_exists(const char *data_dir, const char *dataset, int64_t day, const char *stem)
{
    (void)data_dir, (void)dataset, (void)day, (void)stem;
    abort();
}
int evlog_segment_remove(const char *data_dir, const char *dataset, int64_t day, const char *stem)
{
    (void)data_dir, (void)dataset, (void)day, (void)stem;
    abort();
}

static struct ship *fresh(void)
{
    struct ship *s = calloc(1, sizeof(*s));
    if (s == NULL)
        abort();
    snprintf(s->node_hex, sizeof(s->node_hex), "0123456789abcdef");
    snprintf(s->state_path, sizeof(s->state_path), "/nonexistent/ship-state");
    return s;
}

static void drop(struct ship *s)
{
    free(s->cur);
    free(s->pending.r);
    free(s);
}

/* Parse text[0..len) (a copy: the parser writes into it). */
static int parse(struct ship *s, const char *text, size_t len)
{
    char *copy = fuzz_cstr((const uint8_t *)text, len), err[200] = "";
    int rc = state_parse(s, copy, len, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == PF_EFORMAT);
    FUZZ_CHECK(rc == 0 || err[0] != '\0');
    free(copy);
    return rc;
}

static void check_state(const struct ship *s)
{
    for (size_t i = 0; i < s->ncur; i++) {
        FUZZ_CHECK(valid_stem(s->cur[i].stem));
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(s->cur[j].day != s->cur[i].day ||
                       strcmp(s->cur[j].stem, s->cur[i].stem) != 0);
    }
    FUZZ_CHECK(s->pending.active || s->pending.n == 0);
    for (size_t i = 0; i < s->pending.n; i++) {
        FUZZ_CHECK(valid_stem(s->pending.r[i].stem));
        FUZZ_CHECK(s->pending.r[i].from <= s->pending.r[i].to);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *body = (const char *)data + 1;
    size_t blen = size - 1;
    char *text = malloc(blen + 32);
    if (text == NULL)
        abort();
    memcpy(text, body, blen);
    size_t len = blen;
    if (data[0] & 1)
        len += (size_t)snprintf(text + blen, 32, "sum %016" PRIx64 "\n",
                                (uint64_t)XXH3_64bits(body, blen));

    struct ship *s = fresh();
    if (parse(s, text, len) == 0) {
        check_state(s);
        FUZZ_CHECK(state_write(s) == 0 && written != NULL);
        char *first = written;
        size_t first_len = written_len;
        written = NULL;
        struct ship *s2 = fresh();
        FUZZ_CHECK(parse(s2, first, first_len) == 0);
        FUZZ_CHECK(s2->next_seq == s->next_seq && s2->ncur == s->ncur);
        FUZZ_CHECK(s2->pending.active == s->pending.active && s2->pending.n == s->pending.n);
        if (s->pending.active)
            FUZZ_CHECK(s2->pending.seq == s->pending.seq && s2->pending.day == s->pending.day &&
                       s2->pending.rows == s->pending.rows);
        FUZZ_CHECK(state_write(s2) == 0 && written != NULL);
        FUZZ_CHECK(written_len == first_len && memcmp(written, first, first_len) == 0);
        free(first);
        drop(s2);
    }
    drop(s);
    free(written);
    written = NULL;
    free(text);
    return 0;
}
