/* health.c - see health.h. */
#include "api/health.h"

#include "analytics/evlog.h"

#include "base/err.h"
#include "base/fsutil.h"
#include "cdn/urlpath.h"
#include "store/db.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct health {
    char *database, *data_dir, *storage_dir, *events_dir;
    uint64_t min_free_bytes;
    pthread_mutex_t lock; /* one check at a time: the connection is one thread's */
    struct db *db;
};

int health_new(const struct health_opts *o, struct health **out)
{
    struct health *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return PF_ENOMEM;
    h->database = strdup(o->database);
    h->data_dir = strdup(o->data_dir);
    h->storage_dir = strdup(o->storage_dir);
    h->events_dir = o->events_dir != NULL ? strdup(o->events_dir) : NULL;
    h->min_free_bytes = o->min_free_bytes;
    pthread_mutex_init(&h->lock, NULL);
    if (h->database == NULL || h->data_dir == NULL || h->storage_dir == NULL ||
        (o->events_dir != NULL && h->events_dir == NULL)) {
        health_free(h);
        return PF_ENOMEM;
    }
    *out = h;
    return 0;
}

void health_free(struct health *h)
{
    if (h == NULL)
        return;
    db_close(h->db);
    pthread_mutex_destroy(&h->lock);
    free(h->database);
    free(h->data_dir);
    free(h->storage_dir);
    free(h->events_dir);
    free(h);
}

/* The database answers a read. A connection that failed is dropped and
 * opened again at the next check. */
static int check_database(struct health *h, char *why, size_t n)
{
    char err[256], value[64];
    int rc = 0;
    if (h->db == NULL) {
        rc = db_open(h->database, &h->db, err, sizeof(err));
        if (rc != 0) {
            snprintf(why, n, "cannot open the database: %s", err);
            return rc;
        }
        db_set_busy_timeout(h->db, 2000);
    }
    rc = db_meta_get(h->db, "last_aggregation_date", value, sizeof(value));
    if (rc == PF_ENOTFOUND)
        rc = 0;
    if (rc != 0) {
        snprintf(why, n, "the database does not answer: %s", err_str(rc));
        if (rc != PF_EUNAVAIL) { /* PostgreSQL reconnects by itself */
            db_close(h->db);
            h->db = NULL;
        }
    }
    return rc;
}

/* The event log's directory takes a new file: an unnamed one (O_TMPFILE)
 * that no reader can see, with a byte in it so that a full disk shows. */
static int check_event_store(struct health *h, char *why, size_t n)
{
    if (h->events_dir == NULL)
        return 0;
    /* The writer's fdatasyncs failing: events are taken and served, but
     * may not be on disk. Not ready, so that a balancer prefers a node
     * whose events are durable; the node still serves what reaches it. */
    char marker[4096], line[300] = "";
    snprintf(marker, sizeof(marker), "%s/" EVLOG_FSYNC_MARKER, h->events_dir);
    FILE *f = fopen(marker, "r");
    if (f != NULL) {
        if (fgets(line, sizeof(line), f) != NULL)
            line[strcspn(line, "\n")] = '\0';
        fclose(f);
        snprintf(why, n, "%s", line[0] != '\0' ? line : "fdatasync of the event log failed");
        return PF_EIO;
    }
    int fd = open(h->events_dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR) && access(h->events_dir, W_OK) == 0)
        return 0; /* a filesystem without O_TMPFILE: writable is what we can tell */
    if (fd < 0) {
        snprintf(why, n, "cannot write in %s: %s", h->events_dir, strerror(errno));
        return PF_EIO;
    }
    int rc = 0;
    if (write(fd, "", 1) != 1) {
        snprintf(why, n, "cannot write in %s: %s", h->events_dir, strerror(errno));
        rc = PF_EIO;
    }
    close(fd);
    return rc;
}

static int check_free(const char *dir, uint64_t min, char *why, size_t n)
{
    uint64_t free_bytes = 0;
    if (fsutil_free_bytes(dir, &free_bytes) != 0) {
        snprintf(why, n, "cannot read the free space of %s: %s", dir, strerror(errno));
        return PF_EIO;
    }
    if (free_bytes < min) {
        snprintf(why, n, "%llu MiB free on the filesystem of %s, below PIXFLARE_MIN_FREE_MB=%llu",
                 (unsigned long long)(free_bytes >> 20), dir, (unsigned long long)(min >> 20));
        return PF_EIO;
    }
    return 0;
}

static int check_disk(struct health *h, char *why, size_t n)
{
    int rc = check_free(h->data_dir, h->min_free_bytes, why, n);
    if (rc == 0 && strcmp(h->storage_dir, h->data_dir) != 0)
        rc = check_free(h->storage_dir, h->min_free_bytes, why, n);
    return rc;
}

int health_ready(struct health *h, int *status, char **body)
{
    static const char *const names[] = {"database", "event_store", "disk"};
    char why[3][400];
    int rc[3];
    int failing = -1;
    pthread_mutex_lock(&h->lock);
    rc[0] = check_database(h, why[0], sizeof(why[0]));
    rc[1] = check_event_store(h, why[1], sizeof(why[1]));
    rc[2] = check_disk(h, why[2], sizeof(why[2]));
    pthread_mutex_unlock(&h->lock);

    json_t *checks = json_object();
    for (int i = 0; i < 3; i++) {
        const char *v = rc[i] != 0 ? why[i] : i == 1 && h->events_dir == NULL ? "disabled" : "ok";
        json_object_set_new(checks, names[i], json_string(v));
        if (rc[i] != 0 && failing < 0)
            failing = i;
    }
    json_t *j;
    if (failing < 0) {
        j = json_pack("{s:s, s:o}", "status", "ready", "checks", checks);
    } else {
        char msg[512];
        snprintf(msg, sizeof(msg), "not ready: %s: %s", names[failing], why[failing]);
        j = json_pack("{s:b, s:{s:s, s:s}, s:o}", "success", 0, "error", "code", "NOT_READY",
                      "message", msg, "checks", checks);
    }
    *body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    *status = failing < 0 ? 200 : 503;
    return *body != NULL ? 0 : PF_ENOMEM;
}

/* A /readyz between its two handler calls: the answer the work made. The
 * allocation's alignment keeps the state word's low bits free. */
struct ready_box {
    struct health *h;
    int status;
    char *body;
};

static void ready_work(void *arg)
{
    struct ready_box *b = arg;
    if (health_ready(b->h, &b->status, &b->body) != 0)
        b->body = NULL;
}

static int is_path(const struct http_req *req, const char *p)
{
    return req->path_len == strlen(p) && memcmp(req->path, p, req->path_len) == 0;
}

static int handle(void *ctx, struct http_req *req, struct http_resp *resp, struct http_work *work)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    struct health *h = ctx;
    struct urlpath path;
    struct ready_box *box = (struct ready_box *)req->state;
    resp->cache_control = "no-store";
    if (box != NULL) { /* the checks ran (or the work was refused) */
        if (box->body == NULL) {
            http_resp_error(resp, 503, "NOT_READY", "not ready: the checks could not run");
        } else {
            resp->status = box->status;
            resp->content_type = "application/json";
            resp->owned_body = box->body;
            resp->len = strlen(box->body);
            box->body = NULL;
        }
        return HTTP_DONE;
    }
    if (is_path(req, "/healthz")) {
        resp->status = 200;
        resp->content_type = "application/json";
        resp->body = ok;
        resp->len = sizeof(ok) - 1;
    } else if (!is_path(req, "/readyz")) {
        if (urlpath_parse(req->path, req->path_len, &path) != 0) /* malformed: its 400 */
            http_resp_error(resp, path.status, path.code, path.message);
        else
            http_resp_error(resp, 404, "NOT_FOUND", "not found");
    } else if (h == NULL || req->stopping) {
        http_resp_error(resp, 503, "NOT_READY", "not ready: the server is stopping");
    } else {
        box = calloc(1, sizeof(*box));
        if (box == NULL) {
            http_resp_error(resp, 503, "NOT_READY", "not ready: out of memory");
            return HTTP_DONE;
        }
        box->h = h;
        req->state = (uintptr_t)box;
        work->fn = ready_work;
        work->arg = box;
        return HTTP_DEFER;
    }
    return HTTP_DONE;
}

static void release(void *ctx, uintptr_t state)
{
    struct ready_box *box = (struct ready_box *)state;
    (void)ctx;
    free(box->body);
    free(box);
}

struct http_route health_route_http(struct health *h)
{
    return (struct http_route){
        .name = "other", .handle = handle, .release = release, .threads = 1, .ctx = h};
}
