using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace BatchNorm.Kernels;

/// <summary>
/// Software prefetch for the streaming loops over inputs too large for the caches. Out-of-order execution alone keeps
/// too few cache misses in flight once a loop does more than load-and-store per vector (per-channel coefficients,
/// several accumulators): a wide-row inference pass ran at 0.6x of memcpy bandwidth without it and at memcpy speed with
/// it. In cache it only costs load-port slots, so the kernels use it only where an operation's tensors together take
/// <see cref="WorkingSetBytes"/> or more. A prefetch never faults, so reading ahead past the end of a buffer is
/// harmless. x86 only (.NET exposes no ARM prefetch); elsewhere it compiles to nothing.
/// </summary>
internal static class Prefetch
{
    /// <summary>
    /// How far ahead of the current position a pass that reads one stream (the affine pass, the statistics) prefetches
    /// it. Measured against 4 KiB (seventeenth session, the layer from memory, builds alternating in one process, two
    /// runs, time over the old time): inference 0.84-0.98 on [32,56,56,64], [32,64,56,56], [64,7,7,2048] and
    /// [25088,256] in both types (double [64,7,7,2048], whose rows go in tiles, 0.96-1.06); training forward float32
    /// 0.86-0.98, double 0.93-1.03.
    /// </summary>
    public const int DistanceBytes = 8192;

    /// <summary>
    /// How far ahead a pass that reads two streams side by side (x and dy in the backward's passes) prefetches each:
    /// the same bytes in flight as <see cref="DistanceBytes"/> for one. At 8 KiB the backward took 0.98-1.10 of its time
    /// at 4 KiB on those shapes (mostly above 1), so it stays at 4 KiB.
    /// </summary>
    public const int PairDistanceBytes = 4096;

    /// <summary>The tensors inference and the training forward touch: x and y.</summary>
    public const int ForwardTensors = 2;

    /// <summary>The tensors the backward touches: x, dy and dx.</summary>
    public const int BackwardTensors = 3;

    /// <summary>
    /// Operations whose tensors together take at least this many bytes (half the 32 MiB L3 of the machine the thresholds
    /// were measured on) prefetch; smaller ones are taken to be in cache.
    /// </summary>
    /// <remarks>
    /// Until the twenty-fifth session every pass prefetched from 4 MiB per tensor. Between 4 and 8 MiB the in-cache loops
    /// were faster: the layer with this rule, time over the time with the old one, float32, one thread, builds
    /// alternating in one process: backward [1024, 1024] 0.66-0.74, [1280, 1024] 0.72-0.84, channels first
    /// [4, 256, 32, 32] and [16, 256, 16, 16] 0.77-0.91, float64 [512, 1024] 0.69-0.74 (two threads: [1024, 1024] 0.68); inference
    /// [1536, 1024] 0.75-0.84, [8, 14, 14, 1024] 0.80, float64 [768, 1024] 0.78; training forward [1536, 1024]
    /// 0.89-0.92. Where the rule moves, the two kinds of loop cross: the backward's in-cache loops took 0.83-1.16 of the
    /// prefetching ones' time at [1408, 1024] (5.5 MiB per tensor, over 16 MiB for three) and 1.07-1.25 from 6.5 MiB up;
    /// inference and the training forward 0.89-1.17 between 7 and 8 MiB, training 1.47 at 10 MiB. Streaming stores were
    /// left at 12 MiB (<see cref="NonTemporal.ThresholdBytes"/>): from 6 MiB they took the one-thread backward to
    /// 0.915-0.93 of its time, but inference on two threads to 1.76, and they leave the output out of the caches for
    /// whatever reads it next.
    /// </remarks>
    public const long WorkingSetBytes = 16L << 20;

    /// <summary>
    /// Whether a pass over a tensor of <paramref name="elements"/> elements of <typeparamref name="T"/> should prefetch,
    /// for an operation that touches <paramref name="tensors"/> tensors of that size (<see cref="ForwardTensors"/> or
    /// <see cref="BackwardTensors"/>): whether they take <see cref="WorkingSetBytes"/> or more.
    /// </summary>
    public static unsafe bool IsWorthIt<T>(long elements, int tensors)
        where T : unmanaged => Sse.IsSupported && elements * sizeof(T) * tensors >= WorkingSetBytes;

    /// <summary>Prefetches the line <see cref="DistanceBytes"/> ahead of element <paramref name="offset"/> of <paramref name="source"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Ahead<T>(ref T source, nuint offset)
        where T : unmanaged
    {
        At(ref source, offset + (nuint)(DistanceBytes / sizeof(T)));
    }

    /// <summary>Prefetches the line <see cref="PairDistanceBytes"/> ahead of element <paramref name="offset"/> of <paramref name="source"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void PairAhead<T>(ref T source, nuint offset)
        where T : unmanaged
    {
        At(ref source, offset + (nuint)(PairDistanceBytes / sizeof(T)));
    }

    /// <summary>Prefetches the line holding element <paramref name="offset"/> of <paramref name="source"/> itself.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void At<T>(ref T source, nuint offset)
        where T : unmanaged
    {
        if (Sse.IsSupported)
        {
            // The address only steers the hardware: a stale one (the GC moved the array) costs a useless prefetch.
            Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref source, offset)));
        }
    }
}
