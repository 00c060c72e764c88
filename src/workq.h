/* workq.h - a small pool of threads for blocking work (variant generation)
 * that must not run on the HTTP event-loop threads.
 *
 * Jobs run in FIFO order. workq_free() runs every queued job, then joins the
 * threads; a job owns its `arg` and frees it itself. */
#ifndef PF_WORKQ_H
#define PF_WORKQ_H

struct workq;

/* Start `threads` workers. OUT: *out. */
int workq_new(int threads, struct workq **out);

/* Queue fn(arg). Returns 0, or PF_ENOMEM (the job was not queued). */
int workq_push(struct workq *q, void (*fn)(void *arg), void *arg);

/* Finish all queued jobs, stop the workers and free the pool. */
void workq_free(struct workq *q);

#endif
