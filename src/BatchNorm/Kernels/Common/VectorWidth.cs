using System.Collections.Generic;
using System.Runtime.Intrinsics;

namespace BatchNorm.Kernels;

/// <summary>The vector width a kernel runs at; each is callable on its own so tests can exercise every path.</summary>
internal enum VectorWidth
{
    /// <summary>One element at a time, no SIMD.</summary>
    Scalar = 0,

    /// <summary><see cref="Vector128{T}"/> (SSE, AdvSimd).</summary>
    Vector128 = 128,

    /// <summary><see cref="Vector256{T}"/> (AVX2).</summary>
    Vector256 = 256,

    /// <summary><see cref="Vector512{T}"/> (AVX-512).</summary>
    Vector512 = 512,
}

internal static class VectorWidths
{
    /// <summary>The widest width this process accelerates (the DOTNET_Enable* switches lower it).</summary>
    public static VectorWidth Best { get; } =
        Vector512.IsHardwareAccelerated ? VectorWidth.Vector512
        : Vector256.IsHardwareAccelerated ? VectorWidth.Vector256
        : Vector128.IsHardwareAccelerated ? VectorWidth.Vector128
        : VectorWidth.Scalar;

    /// <summary>Elements of <typeparamref name="T"/> per vector at <paramref name="width"/> (1 for scalar).</summary>
    public static unsafe int Lanes<T>(VectorWidth width)
        where T : unmanaged => width == VectorWidth.Scalar ? 1 : (int)width / (8 * sizeof(T));

    /// <summary>
    /// 256 bits in place of a best width of 512 for a pass over tensors that come from memory
    /// (<paramref name="fromMemory"/>), unless <paramref name="layout"/>'s rows are channels last and at most four 512-bit
    /// vectors wide; <paramref name="best"/> otherwise. The GC starts large arrays 88 bytes into a page, so every 512-bit
    /// load of such a tensor straddles two cache lines, where only half of the 256-bit loads do. Narrow rows keep 512 bits:
    /// their loops hold every per-channel value in registers, and at 256 bits they would take the wide-row loops. The
    /// choice depends only on the layout, so it is the same for any number of threads.
    /// </summary>
    public static VectorWidth HalfFromMemory<T>(VectorWidth best, ChannelLayout layout, bool fromMemory)
        where T : unmanaged
    {
        if (best != VectorWidth.Vector512 || !fromMemory)
        {
            return best;
        }

        bool narrow = layout.IsChannelsLast && layout.Channels <= 4 * Lanes<T>(VectorWidth.Vector512);
        return narrow ? best : VectorWidth.Vector256;
    }

    /// <summary>Every width this process can run, scalar first.</summary>
    public static IReadOnlyList<VectorWidth> Supported { get; } = BuildSupported();

    private static VectorWidth[] BuildSupported()
    {
        var list = new List<VectorWidth> { VectorWidth.Scalar };
        if (Vector128.IsHardwareAccelerated)
        {
            list.Add(VectorWidth.Vector128);
        }

        if (Vector256.IsHardwareAccelerated)
        {
            list.Add(VectorWidth.Vector256);
        }

        if (Vector512.IsHardwareAccelerated)
        {
            list.Add(VectorWidth.Vector512);
        }

        return [.. list];
    }
}
