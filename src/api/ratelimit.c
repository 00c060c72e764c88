/* ratelimit.c - see ratelimit.h. */
#include "api/ratelimit.h"

#include "base/err.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A request made during second s counts through second s + 60: buckets
 * are whole seconds, so one made late in second s leaves the count at the
 * start of s + 61, never less than 60 s later. Counting only up to s + 59
 * would let one made at 0.999 s and one at 60.000 s both pass: twice the
 * limit within 59.001 s. */
#define SPAN 61  /* seconds a request counts */
#define SLOTS 64 /* buckets, by second % SLOTS (at least SPAN) */

struct rl_entry {
    char owner[33];
    int taken;          /* 0: a free slot (not owner "": "" is a name too) */
    int64_t sec[SLOTS]; /* the second each bucket counts */
    uint32_t n[SLOTS];
    int64_t last; /* the last second counted */
};

struct ratelimit {
    pthread_mutex_t lock;
    int limit;
    size_t cap, used; /* open addressing, linear probing, cap a power of 2 */
    struct rl_entry *slots;
};

int ratelimit_new(int limit, struct ratelimit **out)
{
    struct ratelimit *rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return PF_ENOMEM;
    rl->limit = limit;
    rl->cap = 64;
    rl->slots = calloc(rl->cap, sizeof(*rl->slots));
    if (rl->slots == NULL) {
        free(rl);
        return PF_ENOMEM;
    }
    pthread_mutex_init(&rl->lock, NULL);
    *out = rl;
    return 0;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (rl == NULL)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl->slots);
    free(rl);
}

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct rl_entry *find(struct rl_entry *slots, size_t cap, const char *owner)
{
    size_t i = hash(owner) & (cap - 1);
    while (slots[i].taken && strcmp(slots[i].owner, owner) != 0)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

/* Make room: drop the owners idle for a whole window, and double the table
 * if it is still over half full. */
static int make_room(struct ratelimit *rl, int64_t now)
{
    size_t cap = rl->cap;
    size_t live = 0;
    for (size_t i = 0; i < rl->cap; i++)
        live += rl->slots[i].taken && rl->slots[i].last > now - SPAN;
    if (live * 2 >= cap)
        cap *= 2;
    struct rl_entry *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return PF_ENOMEM;
    for (size_t i = 0; i < rl->cap; i++)
        if (rl->slots[i].taken && rl->slots[i].last > now - SPAN)
            *find(slots, cap, rl->slots[i].owner) = rl->slots[i];
    free(rl->slots);
    rl->slots = slots;
    rl->cap = cap;
    rl->used = live;
    return 0;
}

int ratelimit_take(struct ratelimit *rl, const char *owner, int64_t now_ms, int *remaining,
                   int *retry_after)
{
    int64_t now = now_ms / 1000;
    int ok = 1;
    char key[33];
    /* Owners are keyed hashes (32 hex characters); a longer name is cut the
     * same way for the lookup as for the stored copy, so it is limited too. */
    snprintf(key, sizeof(key), "%s", owner);
    owner = key;
    pthread_mutex_lock(&rl->lock);
    struct rl_entry *e = find(rl->slots, rl->cap, owner);
    if (!e->taken && (rl->used + 1) * 4 > rl->cap * 3) {
        if (make_room(rl, now) != 0) {
            pthread_mutex_unlock(&rl->lock);
            *remaining = 0;
            *retry_after = 1;
            return 1; /* out of memory: better to serve than to refuse all */
        }
        e = find(rl->slots, rl->cap, owner);
    }
    if (!e->taken) {
        memset(e, 0, sizeof(*e));
        e->taken = 1;
        strcpy(e->owner, key); /* fits: key is cut to 32 */
        rl->used++;
    }
    int64_t count = 0;
    for (int i = 0; i < SLOTS; i++)
        if (e->sec[i] > now - SPAN && e->sec[i] <= now)
            count += e->n[i];
    if (count >= rl->limit) {
        /* Wait until enough of the oldest buckets have left the count that
         * one more request fits: the bucket of second s leaves at s + SPAN. */
        int64_t excess = count - rl->limit + 1, wait = SPAN;
        for (int64_t s = now - SPAN + 1; s <= now && excess > 0; s++) {
            int k = (int)(((s % SLOTS) + SLOTS) % SLOTS);
            if (e->sec[k] == s) {
                excess -= e->n[k];
                wait = s + SPAN - now;
            }
        }
        ok = 0;
        *remaining = 0;
        *retry_after = (int)(wait < 1 ? 1 : wait);
    } else {
        int k = (int)(((now % SLOTS) + SLOTS) % SLOTS);
        if (e->sec[k] != now) {
            e->sec[k] = now;
            e->n[k] = 0;
        }
        e->n[k]++;
        e->last = now;
        *remaining = (int)(rl->limit - count - 1);
        *retry_after = 0;
    }
    pthread_mutex_unlock(&rl->lock);
    return ok;
}
