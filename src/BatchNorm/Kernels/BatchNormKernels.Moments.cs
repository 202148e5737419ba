using System;
using System.Buffers;
using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace BatchNorm.Kernels;

internal static partial class BatchNormKernels
{
    /// <summary>Elements per statistics block: small enough that the block's second pass reads from L1/L2.</summary>
    internal const int BlockElements = 4096;

    /// <summary>Fewest rows in a channels-last block, bounding the per-block merge cost for wide rows.</summary>
    internal const int MinBlockRows = 16;

    /// <summary>
    /// Per-channel mean and biased (population) variance of <paramref name="x"/> laid out as <paramref name="layout"/>:
    /// <c>mean = sum(x) / n</c>, <c>variance = sum((x - mean)^2) / n</c>, n = <c>layout.CountPerChannel</c> (&gt; 0).
    /// </summary>
    /// <remarks>
    /// Robust by construction, never <c>E[x^2] - E[x]^2</c>: the data is cut into cache-sized blocks; each block is
    /// summed once to get an approximate block mean <c>k</c>, then read again (from cache) for the shifted sums
    /// <c>S1 = sum(x - k)</c> and <c>S2 = sum((x - k)^2)</c>, which give the block's exact mean <c>k + S1/m</c> and
    /// squared deviations <c>S2 - S1^2/m</c> with no cancellation; blocks are merged in double precision with
    /// Chan et al.'s pairwise update. The variance is never negative.
    /// </remarks>
    public static void Moments<T>(ReadOnlySpan<T> x, ChannelLayout layout, Span<double> mean, Span<double> variance, VectorWidth width)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Debug.Assert(x.Length == layout.Length && layout.CountPerChannel > 0);
        Debug.Assert(mean.Length == layout.Channels && variance.Length == layout.Channels);

        mean.Clear();
        variance.Clear(); // holds the running sum of squared deviations (M2) until the end
        ref T src = ref MemoryMarshal.GetReference(x);

        if (layout.IsChannelsLast)
        {
            T[] scratch = ArrayPool<T>.Shared.Rent(3 * layout.Channels);
            try
            {
                switch (width)
                {
                    case VectorWidth.Vector512:
                        MomentsChannelsLast<Vector512<T>, Vector512Ops<T>, T, AllRows>(ref src, new AllRows(layout.Outer), layout.Channels, mean, variance, scratch);
                        break;
                    case VectorWidth.Vector256:
                        MomentsChannelsLast<Vector256<T>, Vector256Ops<T>, T, AllRows>(ref src, new AllRows(layout.Outer), layout.Channels, mean, variance, scratch);
                        break;
                    case VectorWidth.Vector128:
                        MomentsChannelsLast<Vector128<T>, Vector128Ops<T>, T, AllRows>(ref src, new AllRows(layout.Outer), layout.Channels, mean, variance, scratch);
                        break;
                    default:
                        MomentsChannelsLast<T, ScalarOps<T>, T, AllRows>(ref src, new AllRows(layout.Outer), layout.Channels, mean, variance, scratch);
                        break;
                }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(scratch);
            }
        }
        else
        {
            switch (width)
            {
                case VectorWidth.Vector512:
                    MomentsChannelsFirst<Vector512<T>, Vector512Ops<T>, T>(ref src, layout, mean, variance);
                    break;
                case VectorWidth.Vector256:
                    MomentsChannelsFirst<Vector256<T>, Vector256Ops<T>, T>(ref src, layout, mean, variance);
                    break;
                case VectorWidth.Vector128:
                    MomentsChannelsFirst<Vector128<T>, Vector128Ops<T>, T>(ref src, layout, mean, variance);
                    break;
                default:
                    MomentsChannelsFirst<T, ScalarOps<T>, T>(ref src, layout, mean, variance);
                    break;
            }
        }

        double n = layout.CountPerChannel;
        for (int c = 0; c < variance.Length; c++)
        {
            variance[c] /= n;
        }
    }

    /// <summary>
    /// Channels last, <c>[rows, C]</c>: vectors run across channels, blocks of rows are merged. <paramref name="rows"/>
    /// selects the rows that count (all of them, or the unmasked ones).
    /// </summary>
    private static void MomentsChannelsLast<TVec, TOps, T, TRows>(ref T x, TRows rows, int channels, Span<double> mean, Span<double> m2, Span<T> scratch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TRows : IRowSelection, allows ref struct
    {
        int width = TOps.Count;
        if (channels < width)
        {
            MomentsChannelsLast<T, ScalarOps<T>, T, TRows>(ref x, rows, channels, mean, m2, scratch);
            return;
        }

        ref T shift = ref MemoryMarshal.GetReference(scratch);
        ref T sum1 = ref Unsafe.Add(ref shift, channels);
        ref T sum2 = ref Unsafe.Add(ref shift, 2 * channels);
        int blockRows = Math.Max(MinBlockRows, BlockElements / channels);
        nuint stride = (nuint)channels;

        for (int r0 = 0; r0 < rows.Count; r0 += blockRows)
        {
            int blockCount = Math.Min(blockRows, rows.Count - r0);
            TVec inverseCount = TOps.Broadcast(T.One / T.CreateTruncating(blockCount));

            // Chunks of `width` channels; the last chunk overlaps its neighbour instead of a scalar tail. Each
            // channel's result depends only on that channel's data, so the overlap recomputes identical values.
            for (int c = 0; ; c = Math.Min(c + width, channels - width))
            {
                // Contiguous rows step the offset by the row stride (TRows.IsContiguous is a JIT-time constant, so
                // the other branch vanishes); selected rows look each row up.
                nuint first = (nuint)(((nint)r0 * channels) + c);
                TVec acc = TOps.Zero;
                nuint offset = first;
                for (int r = 0; r < blockCount; r++, offset += stride)
                {
                    acc = TOps.Add(acc, TOps.Load(ref x, TRows.IsContiguous ? offset : (nuint)((rows.Row(r0 + r) * channels) + c)));
                }

                TVec k = TOps.Multiply(acc, inverseCount);
                TVec s1 = TOps.Zero;
                TVec s2 = TOps.Zero;
                offset = first;
                for (int r = 0; r < blockCount; r++, offset += stride)
                {
                    TVec d = TOps.Subtract(TOps.Load(ref x, TRows.IsContiguous ? offset : (nuint)((rows.Row(r0 + r) * channels) + c)), k);
                    s1 = TOps.Add(s1, d);
                    s2 = TOps.Add(s2, TOps.Multiply(d, d));
                }

                TOps.Store(k, ref shift, (nuint)c);
                TOps.Store(s1, ref sum1, (nuint)c);
                TOps.Store(s2, ref sum2, (nuint)c);
                if (c + width >= channels)
                {
                    break;
                }
            }

            for (int c = 0; c < channels; c++)
            {
                MergeBlock(
                    ref mean[c], ref m2[c], r0, blockCount,
                    double.CreateTruncating(Unsafe.Add(ref shift, c)),
                    double.CreateTruncating(Unsafe.Add(ref sum1, c)),
                    double.CreateTruncating(Unsafe.Add(ref sum2, c)));
            }
        }
    }

    /// <summary>Which rows of a channels-last input a statistics pass reads.</summary>
    internal interface IRowSelection
    {
        /// <summary>Whether row i is row i of the input (so offsets can be stepped rather than looked up).</summary>
        static abstract bool IsContiguous { get; }

        int Count { get; }

        nint Row(int index);
    }

    /// <summary>Every row, in order.</summary>
    internal readonly struct AllRows : IRowSelection
    {
        public AllRows(int count) => Count = count;

        public static bool IsContiguous => true;

        public int Count { get; }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public nint Row(int index) => index;
    }

    /// <summary>The listed rows (the unmasked ones).</summary>
    internal readonly ref struct SelectedRows : IRowSelection
    {
        private readonly ReadOnlySpan<int> _rows;

        public SelectedRows(ReadOnlySpan<int> rows) => _rows = rows;

        public static bool IsContiguous => false;

        public int Count => _rows.Length;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public nint Row(int index) => _rows[index];
    }

    /// <summary>Channel not last, <c>[outer, C, inner]</c>: vectors run along each contiguous run of a channel.</summary>
    private static void MomentsChannelsFirst<TVec, TOps, T>(ref T x, ChannelLayout layout, Span<double> mean, Span<double> m2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int inner = layout.Inner;
        for (int o = 0; o < layout.Outer; o++)
        {
            for (int c = 0; c < layout.Channels; c++)
            {
                ref T run = ref Unsafe.Add(ref x, ((nint)o * layout.Channels + c) * inner);
                for (int j0 = 0; j0 < inner; j0 += BlockElements)
                {
                    int count = Math.Min(BlockElements, inner - j0);
                    ref T block = ref Unsafe.Add(ref run, j0);
                    T k = T.CreateTruncating(Sum<TVec, TOps, T>(ref block, count) / count);
                    (double s1, double s2) = ShiftedSums<TVec, TOps, T>(ref block, count, k);
                    MergeBlock(ref mean[c], ref m2[c], ((double)o * inner) + j0, count, double.CreateTruncating(k), s1, s2);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double Sum<TVec, TOps, T>(ref T x, int count)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        TVec acc = TOps.Zero;
        int i = 0;
        for (; i <= count - width; i += width)
        {
            acc = TOps.Add(acc, TOps.Load(ref x, (nuint)i));
        }

        double sum = TOps.SumToDouble(acc);
        for (; i < count; i++)
        {
            sum += double.CreateTruncating(Unsafe.Add(ref x, i));
        }

        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (double Sum1, double Sum2) ShiftedSums<TVec, TOps, T>(ref T x, int count, T shift)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        TVec k = TOps.Broadcast(shift);
        TVec s1 = TOps.Zero;
        TVec s2 = TOps.Zero;
        int i = 0;
        for (; i <= count - width; i += width)
        {
            TVec d = TOps.Subtract(TOps.Load(ref x, (nuint)i), k);
            s1 = TOps.Add(s1, d);
            s2 = TOps.Add(s2, TOps.Multiply(d, d));
        }

        double sum1 = TOps.SumToDouble(s1);
        double sum2 = TOps.SumToDouble(s2);
        double kd = double.CreateTruncating(shift);
        for (; i < count; i++)
        {
            double d = double.CreateTruncating(Unsafe.Add(ref x, i)) - kd;
            sum1 += d;
            sum2 += d * d;
        }

        return (sum1, sum2);
    }

    /// <summary>
    /// Merges a block of <paramref name="countB"/> elements, described by its shift <paramref name="shift"/> and
    /// shifted sums, into a running (mean, M2) over <paramref name="countA"/> elements (Chan et al.).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MergeBlock(ref double mean, ref double m2, double countA, double countB, double shift, double sum1, double sum2)
    {
        double blockMean = shift + (sum1 / countB);
        double blockM2 = Math.Max(0.0, sum2 - (sum1 * sum1 / countB));
        double n = countA + countB;
        double delta = blockMean - mean;
        mean += delta * (countB / n);
        m2 += blockM2 + (delta * delta * (countA * countB / n));
    }
}
