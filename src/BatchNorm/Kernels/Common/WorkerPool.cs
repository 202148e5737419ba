using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading;

namespace BatchNorm.Kernels;

/// <summary>The body of a partitioned loop, run once per part. A struct, so that running it allocates nothing.</summary>
internal interface IPartBody
{
    /// <summary>Runs part <paramref name="part"/>; parts may run concurrently and in any order.</summary>
    void Invoke(int part);
}

/// <summary>
/// The library's own helper threads for <see cref="Partition"/>: a call hands its parts to up to
/// <c>ProcessorCount - 1</c> dedicated background threads and works on them itself, with no allocation per call
/// (<see cref="System.Threading.Tasks.Parallel.For(int, int, Action{int})"/> allocated 1.9-4.2 KB per call for its
/// closure, options and tasks).
/// </summary>
/// <remarks>
/// One call uses the helpers at a time: a call made while they are busy (another thread's layer, or a part that itself
/// partitions) runs its parts on its own thread. Results never depend on that, since every partition is fixed by the
/// shape and merged in part order. The helpers are created on first use and live for the process; they block when idle.
/// </remarks>
internal static unsafe class WorkerPool
{
    private static readonly Lock Gate = new();
    private static readonly SemaphoreSlim Wake = new(0);
    private static readonly ManualResetEventSlim Done = new(false);

    /// <summary>Set on the helper threads, and on a caller while it runs parts: no nested use of the helpers.</summary>
    [ThreadStatic]
    private static bool insidePart;

    private static int helperThreads;

    // The current job, written by the caller holding Gate before it wakes the helpers, read by them after waking.
    private static delegate*<void*, int, void> job;
    private static void* jobBody;
    private static int jobParts;
    private static int nextPart;
    private static Exception? failure;

    /// <summary>Helpers working on the current job, plus <see cref="Closed"/> once the caller has taken every part.</summary>
    private static int jobState = Closed;

    private const int Closed = 1 << 30;

    /// <summary>How long an idle helper polls for the next job before it blocks (a blocked thread takes tens of microseconds to wake).</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 20_000;

    /// <summary>Most helper threads a call can use: the machine's other cores.</summary>
    public static int MaxHelpers => Environment.ProcessorCount - 1;

    /// <summary>
    /// Runs <c>body.Invoke(part)</c> for every part in [0, <paramref name="parts"/>), on the calling thread and up to
    /// <paramref name="degree"/> - 1 helper threads. Returns when every part has run; an exception thrown by a part is
    /// rethrown here once all threads have stopped working on the call.
    /// </summary>
    public static void Run<TBody>(int parts, int degree, in TBody body)
        where TBody : struct, IPartBody
    {
        int helpers = Math.Min(Math.Min(degree, parts) - 1, MaxHelpers);
        if (helpers <= 0 || insidePart || !Gate.TryEnter())
        {
            for (int part = 0; part < parts; part++)
            {
                body.Invoke(part);
            }

            return;
        }

        try
        {
            EnsureHelpers(helpers);

            // A copy on this frame: the helpers read it through a pointer, and a stack slot never moves. This frame
            // waits for every helper before returning, so the copy outlives its readers.
            TBody local = body;
            job = &InvokePart<TBody>;
            jobBody = Unsafe.AsPointer(ref local);
            jobParts = parts;
            nextPart = 0;
            failure = null;
            Done.Reset();
            Volatile.Write(ref jobState, 0);
            Wake.Release(helpers);

            insidePart = true;
            try
            {
                WorkOnParts();
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref failure, e, null);
            }
            finally
            {
                insidePart = false;
            }

            // Every part has been claimed. Close the job to helpers that wake only now, and wait for those still
            // running a part: the caller never waits for a helper that did not join in time.
            if (Interlocked.Or(ref jobState, Closed) != 0)
            {
                Done.Wait();
            }

            Exception? thrown = failure;
            job = null;
            jobBody = null;
            failure = null;
            if (thrown is not null)
            {
                ExceptionDispatchInfo.Throw(thrown);
            }
        }
        finally
        {
            Gate.Exit();
        }
    }

    private static void InvokePart<TBody>(void* body, int part)
        where TBody : struct, IPartBody => Unsafe.AsRef<TBody>(body).Invoke(part);

    /// <summary>Claims parts in turn until none is left (each part runs exactly once, on whichever thread claims it).</summary>
    private static void WorkOnParts()
    {
        delegate*<void*, int, void> run = job;
        void* body = jobBody;
        int parts = jobParts;
        for (int part = Interlocked.Increment(ref nextPart) - 1; part < parts; part = Interlocked.Increment(ref nextPart) - 1)
        {
            run(body, part);
        }
    }

    private static void EnsureHelpers(int count)
    {
        // Only the thread holding Gate gets here, so helperThreads needs no further synchronisation.
        for (; helperThreads < count; helperThreads++)
        {
            var thread = new Thread(HelperLoop) { IsBackground = true, Name = "BatchNorm worker" };
            thread.Start();
        }
    }

    /// <summary>
    /// A helper: woken by a caller's release, it joins the job if the job is still open, works on its parts, and the last
    /// helper to leave a closed job tells the caller. A late wake-up finds the job closed (or joins a newer one).
    /// </summary>
    private static void HelperLoop()
    {
        insidePart = true;
        while (true)
        {
            long spinUntil = Stopwatch.GetTimestamp() + SpinTicks;
            while (Wake.CurrentCount == 0 && Stopwatch.GetTimestamp() < spinUntil)
            {
                Thread.SpinWait(16);
            }

            Wake.Wait();
            if (!TryJoin())
            {
                continue;
            }

            try
            {
                WorkOnParts();
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref failure, e, null);
            }

            if (Interlocked.Decrement(ref jobState) == Closed)
            {
                Done.Set();
            }
        }
    }

    /// <summary>Counts this helper into the current job, unless the caller has already closed it.</summary>
    private static bool TryJoin()
    {
        int state = Volatile.Read(ref jobState);
        while ((state & Closed) == 0)
        {
            int seen = Interlocked.CompareExchange(ref jobState, state + 1, state);
            if (seen == state)
            {
                return true;
            }

            state = seen;
        }

        return false;
    }
}
