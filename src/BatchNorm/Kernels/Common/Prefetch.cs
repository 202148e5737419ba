using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace BatchNorm.Kernels;

/// <summary>
/// Software prefetch for the streaming loops over inputs too large for the caches. Out-of-order execution alone keeps
/// too few cache misses in flight once a loop does more than load-and-store per vector (per-channel coefficients,
/// several accumulators): a wide-row inference pass ran at 0.6x of memcpy bandwidth without it and at memcpy speed with
/// it. In cache it only costs load-port slots, so the kernels use it above <see cref="ThresholdBytes"/> only.
/// A prefetch never faults, so reading ahead past the end of a buffer is harmless. x86 only (.NET exposes no ARM
/// prefetch); elsewhere it compiles to nothing.
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

    /// <summary>Calls that read at least this many bytes prefetch; smaller ones are taken to be in cache.</summary>
    public const long ThresholdBytes = 4L << 20;

    /// <summary>Whether a pass over <paramref name="elements"/> elements of <typeparamref name="T"/> should prefetch.</summary>
    public static unsafe bool IsWorthIt<T>(long elements)
        where T : unmanaged => Sse.IsSupported && elements * sizeof(T) >= ThresholdBytes;

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
