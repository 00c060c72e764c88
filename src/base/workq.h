/* workq.h - a small pool of threads for blocking work (variant generation)
 * that must not run on the HTTP event-loop threads.
 *
 * Jobs run in FIFO order; a job owns its `arg` and frees it itself.
 * workq_stop() refuses new jobs, runs every queued one and joins the threads;
 * workq_free() (which stops first if needed) releases the memory. */
#ifndef PF_WORKQ_H
#define PF_WORKQ_H

struct workq;

/* Start `threads` workers. OUT: *out. */
int workq_new(int threads, struct workq **out);

/* Queue fn(arg). Returns 0, or PF_ENOMEM, or PF_EINVAL once the pool is
 * stopping; the job was then not queued and the caller still owns arg. */
int workq_push(struct workq *q, void (*fn)(void *arg), void *arg);

/* Refuse new jobs, finish the queued ones, join the workers. Idempotent. */
void workq_stop(struct workq *q);

/* Stop if still running, then free the pool. */
void workq_free(struct workq *q);

#endif
