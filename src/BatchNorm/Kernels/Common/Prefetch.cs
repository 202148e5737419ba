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
    /// <summary>How far ahead of the current position a stream is prefetched.</summary>
    public const int DistanceBytes = 4096;

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
