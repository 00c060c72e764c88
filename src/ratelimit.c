/* ratelimit.c - see ratelimit.h. */
#include "ratelimit.h"

#include "err.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 60 /* seconds */

struct rl_entry {
    char owner[33];      /* "" marks a free slot */
    int64_t sec[WINDOW]; /* the second each bucket counts, by second % WINDOW */
    uint32_t n[WINDOW];
    int64_t last; /* the last second counted */
};

struct ratelimit {
    pthread_mutex_t lock;
    int limit;
    size_t cap, used; /* open addressing, linear probing, cap a power of 2 */
    struct rl_entry *slots;
};

int rl_new(int limit, struct ratelimit **out)
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

void rl_free(struct ratelimit *rl)
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
    while (slots[i].owner[0] != '\0' && strcmp(slots[i].owner, owner) != 0)
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
        live += rl->slots[i].owner[0] != '\0' && rl->slots[i].last > now - WINDOW;
    if (live * 2 >= cap)
        cap *= 2;
    struct rl_entry *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return PF_ENOMEM;
    for (size_t i = 0; i < rl->cap; i++)
        if (rl->slots[i].owner[0] != '\0' && rl->slots[i].last > now - WINDOW)
            *find(slots, cap, rl->slots[i].owner) = rl->slots[i];
    free(rl->slots);
    rl->slots = slots;
    rl->cap = cap;
    rl->used = live;
    return 0;
}

int rl_take(struct ratelimit *rl, const char *owner, int64_t now_ms, int *remaining,
            int *retry_after)
{
    int64_t now = now_ms / 1000;
    int ok = 1;
    pthread_mutex_lock(&rl->lock);
    struct rl_entry *e = find(rl->slots, rl->cap, owner);
    if (e->owner[0] == '\0' && (rl->used + 1) * 4 > rl->cap * 3) {
        if (make_room(rl, now) != 0) {
            pthread_mutex_unlock(&rl->lock);
            *remaining = 0;
            *retry_after = 1;
            return 1; /* out of memory: better to serve than to refuse all */
        }
        e = find(rl->slots, rl->cap, owner);
    }
    if (e->owner[0] == '\0') {
        memset(e, 0, sizeof(*e));
        strncpy(e->owner, owner, sizeof(e->owner) - 1);
        rl->used++;
    }
    int64_t count = 0;
    for (int i = 0; i < WINDOW; i++)
        if (e->sec[i] > now - WINDOW && e->sec[i] <= now)
            count += e->n[i];
    if (count >= rl->limit) {
        /* Wait until enough of the oldest buckets have left the window that
         * one more request fits: the bucket of second s leaves at s + 60. */
        int64_t excess = count - rl->limit + 1, wait = WINDOW;
        for (int64_t s = now - WINDOW + 1; s <= now && excess > 0; s++) {
            struct rl_entry *b = e; /* bucket of second s */
            int k = (int)(((s % WINDOW) + WINDOW) % WINDOW);
            if (b->sec[k] == s) {
                excess -= b->n[k];
                wait = s + WINDOW - now;
            }
        }
        ok = 0;
        *remaining = 0;
        *retry_after = (int)(wait < 1 ? 1 : wait);
    } else {
        int k = (int)(((now % WINDOW) + WINDOW) % WINDOW);
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
