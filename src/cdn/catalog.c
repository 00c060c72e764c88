/* catalog.c - see catalog.h.
 *
 * Two hash tables (by name, by id) of immutable entries. Chains are made of
 * separate link nodes so that growing a table builds new chains without
 * touching the ones concurrent readers may be walking; the old table is
 * retired, not freed, until close (its size is bounded by the live one's).
 * Writers (open and refresh) are serialised by `write_lock`. */
#include "cdn/catalog.h"

#include "store/db.h"
#include "base/err.h"
#include "base/keyhash.h"
#include "base/timeutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct link {
    struct catalog_image *img;
    struct link *next;
};

struct table {
    size_t mask;
    _Atomic(struct link *) *by_name;
    _Atomic(struct link *) *by_id;
    _Atomic(struct link *) *by_owner; /* the first image seen of each owner */
    struct table *retired;            /* older tables, kept for readers until close */
};

/* Links are allocated in blocks and freed together at close. */
struct link_block {
    struct link_block *next;
    size_t used;
    struct link links[1024];
};

struct entry {
    struct catalog_image img;
    struct entry *all_next;
    char names[]; /* owner\0album\0filename\0 */
};

struct catalog {
    _Atomic(struct table *) table;
    struct db *db;
    pthread_mutex_t write_lock;
    _Atomic int64_t last_refresh_ms;
    _Atomic size_t count;
    int64_t last_seq;
    struct entry *all;
    struct link_block *blocks; /* every link ever made, freed at close */
    char *secret;              /* key of the owner hashes */
};

static uint64_t hash_name(const char *owner, const char *album, const char *filename)
{
    uint64_t h = 1469598103934665603ULL;
    const char *parts[3] = {owner, album, filename};
    for (int i = 0; i < 3; i++) {
        for (const char *p = parts[i]; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL; /* separator no name byte can be */
    }
    return h;
}

static uint64_t hash_owner(const char *owner)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = owner; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h ^ 0x5bd1e995;
}

static uint64_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

/* A new link from the block list. Called by writers only (write_lock). */
static struct link *new_link(struct catalog *cat)
{
    if (cat->blocks == NULL || cat->blocks->used == 1024) {
        struct link_block *b = calloc(1, sizeof(*b));
        if (b == NULL)
            return NULL;
        b->next = cat->blocks;
        cat->blocks = b;
    }
    return &cat->blocks->links[cat->blocks->used++];
}

static struct table *table_new(size_t buckets)
{
    struct table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->mask = buckets - 1;
    t->by_name = calloc(buckets, sizeof(*t->by_name));
    t->by_id = calloc(buckets, sizeof(*t->by_id));
    t->by_owner = calloc(buckets, sizeof(*t->by_owner));
    if (t->by_name == NULL || t->by_id == NULL || t->by_owner == NULL) {
        free(t->by_name);
        free(t->by_id);
        free(t->by_owner);
        free(t);
        return NULL;
    }
    return t;
}

/* Push img onto both chains of t. Readers see the new head atomically. */
static int table_add(struct catalog *cat, struct table *t, struct catalog_image *img)
{
    struct link *a = new_link(cat), *b = new_link(cat);
    if (a == NULL || b == NULL)
        return PF_ENOMEM;
    size_t k = hash_owner(img->owner) & t->mask;
    struct link *o = atomic_load_explicit(&t->by_owner[k], memory_order_relaxed);
    while (o != NULL && strcmp(o->img->owner, img->owner) != 0)
        o = o->next;
    if (o == NULL) {
        if ((o = new_link(cat)) == NULL)
            return PF_ENOMEM;
        o->img = img;
        o->next = atomic_load_explicit(&t->by_owner[k], memory_order_relaxed);
        atomic_store_explicit(&t->by_owner[k], o, memory_order_release);
    }
    size_t i = hash_name(img->owner, img->album, img->filename) & t->mask;
    a->img = img;
    a->next = atomic_load_explicit(&t->by_name[i], memory_order_relaxed);
    atomic_store_explicit(&t->by_name[i], a, memory_order_release);
    size_t j = hash_id(img->id) & t->mask;
    b->img = img;
    b->next = atomic_load_explicit(&t->by_id[j], memory_order_relaxed);
    atomic_store_explicit(&t->by_id[j], b, memory_order_release);
    return 0;
}

/* Grow to twice the size when full: build the new table off to the side,
 * then publish it. Called with write_lock held. */
static int maybe_grow(struct catalog *cat)
{
    struct table *old = atomic_load_explicit(&cat->table, memory_order_relaxed);
    if (atomic_load(&cat->count) + 1 < old->mask + 1)
        return 0;
    struct table *t = table_new((old->mask + 1) * 2);
    if (t == NULL)
        return PF_ENOMEM;
    for (struct entry *e = cat->all; e != NULL; e = e->all_next) {
        int rc = table_add(cat, t, &e->img);
        if (rc != 0)
            return rc; /* t leaks only on OOM; the old table stays valid */
    }
    t->retired = old;
    atomic_store_explicit(&cat->table, t, memory_order_release);
    return 0;
}

static int add_row(void *ctx, const struct db_image *row)
{
    struct catalog *cat = ctx;
    size_t lo = strlen(row->owner) + 1, la = strlen(row->album) + 1, lf = strlen(row->filename) + 1;
    struct entry *e = calloc(1, sizeof(*e) + lo + la + lf);
    if (e == NULL)
        return PF_ENOMEM;
    memcpy(e->names, row->owner, lo);
    memcpy(e->names + lo, row->album, la);
    memcpy(e->names + lo + la, row->filename, lf);
    e->img.owner = e->names;
    e->img.album = e->names + lo;
    e->img.filename = e->names + lo + la;
    snprintf(e->img.id, sizeof(e->img.id), "%s", row->id);
    snprintf(e->img.content_type, sizeof(e->img.content_type), "%s", row->content_type);
    snprintf(e->img.sha256, sizeof(e->img.sha256), "%s", row->sha256);
    e->img.size_bytes = row->size_bytes;
    e->img.created_at = (time_t)row->created_at;
    keyhash_owner(cat->secret, row->owner, e->img.owner_hash);
    int rc = maybe_grow(cat);
    if (rc == 0)
        rc = table_add(cat, atomic_load_explicit(&cat->table, memory_order_relaxed), &e->img);
    if (rc != 0) {
        free(e);
        return rc;
    }
    e->all_next = cat->all;
    cat->all = e;
    atomic_fetch_add(&cat->count, 1);
    cat->last_seq = row->seq;
    return 0;
}

int catalog_open(const char *database, const char *secret, struct catalog **out, char *err,
                 size_t errlen)
{
    struct catalog *cat = calloc(1, sizeof(*cat));
    int rc;
    if (cat == NULL)
        return PF_ENOMEM;
    cat->secret = strdup(secret);
    if (cat->secret == NULL) {
        free(cat);
        return PF_ENOMEM;
    }
    pthread_mutex_init(&cat->write_lock, NULL);
    struct table *t = table_new(1024);
    if (t == NULL) {
        catalog_close(cat);
        return PF_ENOMEM;
    }
    atomic_store(&cat->table, t);
    err[0] = '\0';
    rc = db_open(database, &cat->db, err, errlen); /* its reason says which fault and the fix */
    if (rc == 0)
        rc = db_image_scan(cat->db, 0, add_row, cat);
    if (rc != 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "cannot load the image catalog: %s", err_str(rc));
        catalog_close(cat);
        return rc;
    }
    atomic_store(&cat->last_refresh_ms, timeutil_mono_ms());
    *out = cat;
    return 0;
}

void catalog_close(struct catalog *cat)
{
    if (cat == NULL)
        return;
    struct table *t = atomic_load(&cat->table);
    while (t != NULL) {
        struct table *older = t->retired;
        free(t->by_name);
        free(t->by_id);
        free(t->by_owner);
        free(t);
        t = older;
    }
    struct entry *e = cat->all;
    while (e != NULL) {
        struct entry *next = e->all_next;
        free(e);
        e = next;
    }
    struct link_block *b = cat->blocks;
    while (b != NULL) {
        struct link_block *next = b->next;
        free(b);
        b = next;
    }
    db_close(cat->db);
    pthread_mutex_destroy(&cat->write_lock);
    free(cat->secret);
    free(cat);
}

struct catalog_image *catalog_find_name(const struct catalog *cat, const char *owner,
                                        const char *album, const char *filename)
{
    struct table *t = atomic_load_explicit(&((struct catalog *)cat)->table, memory_order_acquire);
    size_t i = hash_name(owner, album, filename) & t->mask;
    for (struct link *l = atomic_load_explicit(&t->by_name[i], memory_order_acquire); l != NULL;
         l = l->next) {
        struct catalog_image *img = l->img;
        if (strcmp(img->filename, filename) == 0 && strcmp(img->album, album) == 0 &&
            strcmp(img->owner, owner) == 0)
            return img;
    }
    return NULL;
}

struct catalog_image *catalog_find_id(const struct catalog *cat, const char *id)
{
    struct table *t = atomic_load_explicit(&((struct catalog *)cat)->table, memory_order_acquire);
    size_t i = hash_id(id) & t->mask;
    for (struct link *l = atomic_load_explicit(&t->by_id[i], memory_order_acquire); l != NULL;
         l = l->next)
        if (strcmp(l->img->id, id) == 0)
            return l->img;
    return NULL;
}

const uint8_t *catalog_owner_hash(const struct catalog *cat, const char *owner)
{
    struct table *t = atomic_load_explicit(&((struct catalog *)cat)->table, memory_order_acquire);
    size_t i = hash_owner(owner) & t->mask;
    for (struct link *l = atomic_load_explicit(&t->by_owner[i], memory_order_acquire); l != NULL;
         l = l->next)
        if (strcmp(l->img->owner, owner) == 0)
            return l->img->owner_hash;
    return NULL;
}

#define REFRESH_INTERVAL_MS 200

int catalog_refresh_due(const struct catalog *cat)
{
    return timeutil_mono_ms() - atomic_load(&((struct catalog *)cat)->last_refresh_ms) >=
           REFRESH_INTERVAL_MS;
}

int catalog_refresh(struct catalog *cat)
{
    int64_t now = timeutil_mono_ms();
    if (now - atomic_load(&cat->last_refresh_ms) < REFRESH_INTERVAL_MS)
        return 0;
    if (pthread_mutex_trylock(&cat->write_lock) != 0)
        return 0;
    size_t before = atomic_load(&cat->count);
    atomic_store(&cat->last_refresh_ms, now);
    int rc = db_image_scan(cat->db, cat->last_seq, add_row, cat);
    if (rc != 0 && rc != PF_EUNAVAIL) /* an outage is logged once, by the database layer */
        fprintf(stderr, "pixflare: catalog refresh failed: %s\n", err_str(rc));
    size_t after = atomic_load(&cat->count);
    pthread_mutex_unlock(&cat->write_lock);
    return after > before;
}

size_t catalog_count(const struct catalog *cat)
{
    return atomic_load(&((struct catalog *)cat)->count);
}
