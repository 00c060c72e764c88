/* workq.c - see workq.h. One mutex and condition variable guard a linked
 * FIFO; only requests that miss a variant ever touch it. */
#include "base/workq.h"

#include "base/err.h"

#include <pthread.h>
#include <stdlib.h>

struct job {
    void (*fn)(void *arg);
    void *arg;
    struct job *next;
};

struct workq {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct job *head, *tail;
    int stopping;
    int joined;
    int nthreads;
    pthread_t *threads;
};

static void *worker(void *p)
{
    struct workq *q = p;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (q->head == NULL && !q->stopping)
            pthread_cond_wait(&q->ready, &q->lock);
        struct job *j = q->head;
        if (j == NULL)
            break; /* stopping and drained */
        q->head = j->next;
        if (q->head == NULL)
            q->tail = NULL;
        pthread_mutex_unlock(&q->lock);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

int workq_new(int threads, struct workq **out)
{
    struct workq *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return PF_ENOMEM;
    q->threads = calloc((size_t)threads, sizeof(*q->threads));
    if (q->threads == NULL) {
        free(q);
        return PF_ENOMEM;
    }
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->ready, NULL);
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&q->threads[i], NULL, worker, q) != 0)
            break;
        q->nthreads++;
    }
    if (q->nthreads == 0) {
        workq_free(q);
        return PF_ENOMEM;
    }
    *out = q;
    return 0;
}

int workq_push(struct workq *q, void (*fn)(void *arg), void *arg)
{
    struct job *j = malloc(sizeof(*j));
    if (j == NULL)
        return PF_ENOMEM;
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->stopping) {
        pthread_mutex_unlock(&q->lock);
        free(j);
        return PF_EINVAL;
    }
    if (q->tail != NULL)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    pthread_cond_signal(&q->ready);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

void workq_stop(struct workq *q)
{
    pthread_mutex_lock(&q->lock);
    q->stopping = 1;
    pthread_cond_broadcast(&q->ready);
    pthread_mutex_unlock(&q->lock);
    if (q->joined)
        return;
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    q->joined = 1;
}

void workq_free(struct workq *q)
{
    if (q == NULL)
        return;
    workq_stop(q);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->ready);
    free(q->threads);
    free(q);
}
