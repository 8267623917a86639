// SPDX-License-Identifier: MIT
/*
 * The VM's lifecycle: the clock, stopping (first caller wins), waking the control thread,
 * parking the vCPUs for a migration, the events log, and the teardown of what boot.c created.
 * The bottom layer of vmce-vm: it calls nothing else of it (vmm.h).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "vmm.h"

uint64_t vmm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vmm_wake_control(struct vmm *vm)
{
	uint64_t one = 1;

	if (vm->wake_fd >= 0)
		(void)!write(vm->wake_fd, &one, sizeof(one));
}

void vmm_stop(struct vmm *vm, int status, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&vm->lock);
	if (atomic_load(&vm->stopped)) {
		pthread_mutex_unlock(&vm->lock);
		return;
	}
	vm->exit_status = status;
	va_start(ap, fmt);
	vsnprintf(vm->exit_reason, sizeof(vm->exit_reason), fmt, ap);
	va_end(ap);
	atomic_store(&vm->stopped, true);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);

	fprintf(stderr, "vmce-vm: guest stopped: %s (exit status %d)\n", vm->exit_reason, status);
	if (vm->kvm)
		for (unsigned i = 0; i < vm->nr_vcpus; i++)
			vmce_kvm_kick(vm->kvm, i);
	vmm_wake_control(vm);
}

/* ---- pausing the vCPUs (migration source) ---------------------------------------------------- */

int vmm_pause_vcpus(struct vmm *vm, struct vmm_err *err)
{
	struct timespec ts;
	int rc = 0;

	atomic_store(&vm->pause_req, true);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vmce_kvm_kick(vm->kvm, i);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&vm->lock);
	while (vm->vcpus_parked < vm->nr_vcpus && !atomic_load(&vm->stopped) && rc == 0)
		rc = pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
	if (atomic_load(&vm->stopped))
		rc = vmm_fail(err, "the guest stopped");
	else if (vm->vcpus_parked < vm->nr_vcpus)
		rc = vmm_fail(err, "only %u of %u vCPUs paused within 5 s", vm->vcpus_parked,
			      vm->nr_vcpus);
	pthread_mutex_unlock(&vm->lock);
	return rc ? -1 : 0;
}

void vmm_resume_vcpus(struct vmm *vm)
{
	pthread_mutex_lock(&vm->lock);
	atomic_store(&vm->pause_req, false);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

void vmm_vcpu_park(struct vmm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->vcpus_parked++;
	pthread_cond_broadcast(&vm->cond);
	while (atomic_load(&vm->pause_req) && !atomic_load(&vm->stopped))
		pthread_cond_wait(&vm->cond, &vm->lock);
	vm->vcpus_parked--;
	pthread_mutex_unlock(&vm->lock);
}

/* ---- JSON output -------------------------------------------------------------------------- */

json_t *vmm_json_text(const char *s)
{
	json_t *j = json_string(s);
	char *copy;

	if (j)
		return j;
	/* Not UTF-8 (a sentence cut inside a character, bytes from the guest): the bytes that
	 * are not ASCII become '?'. */
	copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *c = copy; *c; c++)
		if ((unsigned char)*c >= 0x80)
			*c = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

char *vmm_json_dump(const json_t *obj)
{
	char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	size_t n = 0, len;
	char *out, *o;

	if (!text)
		return NULL;
	/* jansson escapes what JSON requires; DEL (only possible inside a string) is escaped
	 * too, so that no control character goes out raw. */
	for (char *c = text; *c; c++)
		n += *c == 0x7f;
	if (!n)
		return text;
	len = strlen(text);
	out = malloc(len + 5 * n + 1);
	if (out) {
		o = out;
		for (char *c = text; *c; c++) {
			if (*c == 0x7f) {
				memcpy(o, "\\u007f", 6);
				o += 6;
			} else {
				*o++ = *c;
			}
		}
		*o = '\0';
	}
	free(text);
	return out;
}

/* ---- the events log ------------------------------------------------------------------------- */

json_t *vmm_exit_json(struct vmm *vm)
{
	struct timespec now;
	json_t *o;

	clock_gettime(CLOCK_REALTIME, &now);
	pthread_mutex_lock(&vm->lock);
	o = json_pack(
		"{s:s, s:i, s:o, s:I}", "kind", "vm-exit", "status", vm->exit_status, "reason",
		vmm_json_text(vm->exit_reason), "time_ns",
		(json_int_t)((uint64_t)now.tv_sec * UINT64_C(1000000000) + (uint64_t)now.tv_nsec));
	pthread_mutex_unlock(&vm->lock);
	return o;
}

static void log_line(struct vmm *vm, const char *line)
{
	pthread_mutex_lock(&vm->out_lock);
	fprintf(vm->events_log, "%s\n", line);
	fflush(vm->events_log);
	pthread_mutex_unlock(&vm->out_lock);
}

void vmm_log_json(struct vmm *vm, const json_t *obj)
{
	char *line;

	if (!vm->events_log || !obj)
		return;
	line = vmm_json_dump(obj);
	if (line)
		log_line(vm, line);
	free(line);
}

char *vmm_event_text(const struct vmce_event *ev)
{
	int n = vmce_event_format_json(ev, NULL, 0);
	char *text;

	if (n <= 0)
		return NULL;
	text = malloc((size_t)n + 1);
	if (text)
		vmce_event_format_json(ev, text, (size_t)n + 1);
	return text;
}

void vmm_on_event(const struct vmce_event *ev, void *opaque)
{
	struct vmm *vm = opaque;

	if (vm->events_log) {
		char *line = vmm_event_text(ev);

		if (line)
			log_line(vm, line);
		free(line);
	}
	if (ev->kind == VMCE_EVENT_FATAL)
		fprintf(stderr,
			"vmce-vm: vmce: fatal to the guest (vCPU %d, event %" PRIu64 "): %s\n",
			ev->vcpu, ev->seq, ev->reason);
	vmm_wake_control(vm);
}

/* ---- teardown ------------------------------------------------------------------------------- */

void vmm_teardown(struct vmm *vm)
{
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpu[i].run)
			munmap(vm->vcpu[i].run, vm->vcpu[i].run_size);
		if (vm->vcpu[i].fd > 0)
			close(vm->vcpu[i].fd);
	}
	if (vm->kvm)
		vmce_kvm_destroy(vm->kvm);
	if (vm->vmce)
		vmce_vm_destroy(vm->vmce);
	if (vm->mem)
		munmap(vm->mem, vm->mem_size);
	if (vm->vm_fd > 0)
		close(vm->vm_fd);
	if (vm->kvm_fd > 0)
		close(vm->kvm_fd);
	free(vm->cpuid);
}
