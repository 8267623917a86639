/*
 * interlock.pml - the migration interlock of include/vmce/migrate.h and src/migrate, as a
 * Promela model for SPIN.  docs/reliability.md explains it; tests/model runs it.
 *
 * Processes:
 *   injector  forwards up to NERR host errors to the guest at the source: under the injection
 *             lock it queues the records, then notes them for the interlock
 *             (vmce_inject() -> vmce__vcpu_enqueue() ... vmce__migrate_note_forwarded());
 *   source    vmce_migration_begin(), pre-copy (the guest still runs), pause, vmce_save() (under
 *             the injection lock: the stream holds exactly the records queued then, and the
 *             unsent count restarts), send the state, wait for the destination's
 *             acknowledgement, vmce_migration_end(RESEND): COMPLETE -> commit, RESEND_STATE ->
 *             save and send again; no acknowledgement (message lost, destination crashed or
 *             slow: a timeout may fire whenever no acknowledgement is waiting) ->
 *             vmce_migration_abort() and resume the guest here;
 *   dest      restores every state it receives over the previous one (vmce_restore()), and
 *             runs the guest on COMMIT; it may crash at any time before it runs the guest;
 *   src_vcpu, dst_vcpu  apply queued records while the guest runs there (vmce_vcpu_deliver()).
 * Messages: STATE and its acknowledgement may be lost.
 *
 * Assumptions (where the properties cannot hold under arbitrary loss):
 *   A1 the commit exchange is reliable: COMMIT is retransmitted until acknowledged, and the
 *      source learns when the destination failed before it took the guest (the connection
 *      breaks) - otherwise no protocol can tell "committed" from "lost" (two generals);
 *   A2 the destination does not crash after it started the guest (that is a guest crash, not
 *      a migration failure);
 *   A3 after COMPLETE the source VM is destroyed: host errors on its memory no longer concern
 *      the guest and are not forwarded (unless the source resumes the guest, A1).
 *
 * Properties:
 *   P1 (invariant) the guest never runs in two places, and no error is delivered twice;
 *   P2 (at the end of every run) the guest runs in exactly one place and every forwarded error
 *      was delivered exactly once, every other error never.
 *
 * Mutations (each must make verification fail): -DNO_RESEND (vmce_migration_end() says
 * COMPLETE even when errors were forwarded after the last save), -DEND_WITHOUT_INJECT_LOCK
 * (vmce_migration_end() does not take the injection lock, so an injection between queueing and
 * noting is missed: the defect the model found in the first implementation).
 */
#ifndef NERR
#define NERR 3 /* 1..4 */
#endif

mtype = { STATE, ACK, COMMIT };

chan to_dst = [1] of { mtype, byte };
chan to_src = [2] of { mtype };

bit src_runs = 1;	/* the guest's vCPUs run at the source */
bit dst_runs = 0;	/* ... at the destination */
bit dst_dead = 0;
bit mig_active = 0;	/* vmce_migration_active() */
bit committed = 0;	/* the source gave the guest away (A3) */
bit src_done = 0;
bit inj_done = 0;
bit ilock = 0;		/* vm->inject_lock */
byte srcq = 0;		/* records queued at the source, one bit per error */
byte dstq = 0;		/* records queued at the destination (the last stream restored) */
byte fwd = 0;		/* errors forwarded */
byte unsent = 0;	/* errors noted since the last save */
byte delivered[NERR];

#if NERR > 2
#define DELIVER_2(q) :: (q & 4) -> q = q & ~4; delivered[2]++
#define BAD_2 || delivered[2] > 1
#else
#define DELIVER_2(q)
#define BAD_2
#endif
#if NERR > 3
#define DELIVER_3(q) :: (q & 8) -> q = q & ~8; delivered[3]++
#define BAD_3 || delivered[3] > 1
#else
#define DELIVER_3(q)
#define BAD_3
#endif
#define DELIVER(q) \
	if \
	:: (q & 1) -> q = q & ~1; delivered[0]++ \
	:: (q & 2) -> q = q & ~2; delivered[1]++ \
	DELIVER_2(q) \
	DELIVER_3(q) \
	fi

active proctype injector()
{
	byte e = 0;

	do
	:: e < NERR ->
		if
		:: atomic { ilock == 0 && !committed -> ilock = 1; srcq = srcq | (1 << e);
			    fwd = fwd | (1 << e) }
			/* note_forwarded: a later step, still under the injection lock */
			if
			:: mig_active -> unsent++
			:: else -> skip
			fi;
			ilock = 0
		:: skip	/* this error does not happen (or after A3) */
		fi;
		e++
	:: else -> break
	od;
	inj_done = 1
}

active proctype source()
{
	mig_active = 1;		/* vmce_migration_begin() */
	/* pre-copy: the guest still runs and takes errors here */
	src_runs = 0;		/* pause the vCPUs */
save:
	atomic { ilock == 0 -> to_dst!STATE(srcq); unsent = 0 }	/* vmce_save() + send */
	if
	:: to_dst?STATE(_)	/* the state was lost on the way */
	:: skip
	fi;
	if
	:: to_src?ACK ->
#ifdef END_WITHOUT_INJECT_LOCK
		atomic {
#else
		atomic { ilock == 0 ->
#endif
			if
			:: unsent == 0 -> mig_active = 0; committed = 1	/* COMPLETE */
			:: else ->
#ifdef NO_RESEND
				mig_active = 0; committed = 1
#else
				skip					/* RESEND_STATE */
#endif
			fi
		}
		if
		:: committed -> goto commit
		:: else -> goto save
		fi
	:: empty(to_src) -> goto abort	/* timeout: lost message, crashed or slow destination */
	fi;
commit:
	to_dst!COMMIT(0);	/* retransmitted until acknowledged (A1) */
	if
	:: to_src?ACK -> goto done	/* the guest runs at the destination */
	:: dst_dead -> committed = 0; src_runs = 1; goto done	/* it never took it (A1) */
	fi;
abort:
	atomic { mig_active = 0; src_runs = 1 }	/* vmce_migration_abort(): the guest stays */
done:
	src_done = 1
}

active proctype dest()
{
	byte s;

end_wait:
	do
	:: atomic { to_dst?STATE(s) -> dstq = s }	/* vmce_restore() over the previous one */
		if
		:: to_src!ACK
		:: skip		/* the acknowledgement was lost */
		fi
	:: atomic { to_dst?COMMIT(_) -> dst_runs = 1 }; to_src!ACK; break
	:: atomic { !dst_runs && !dst_dead -> dst_dead = 1 }; break	/* crash (A2) */
	od
}

active proctype src_vcpu()
{
end_run:
	do
	:: atomic { src_runs && srcq != 0 -> DELIVER(srcq) }
	od
}

active proctype dst_vcpu()
{
end_run:
	do
	:: atomic { dst_runs && dstq != 0 && !dst_dead -> DELIVER(dstq) }
	od
}

/* P1: checked in every reachable state. */
active proctype invariant()
{
end_never:
	atomic {
		(src_runs && dst_runs) || delivered[0] > 1 || delivered[1] > 1 BAD_2 BAD_3 ->
		assert(false)
	}
}

/* P2: once the source is done, the injector has finished and the running side has applied
 * its queue. */
active proctype final()
{
	byte e = 0;

	atomic {
		src_done && inj_done && (srcq == 0 || !src_runs) && (dstq == 0 || !dst_runs) ->
		assert(src_runs + dst_runs == 1);
		do
		:: e < NERR -> assert(delivered[e] == ((fwd >> e) & 1)); e++
		:: else -> break
		od
	}
}
