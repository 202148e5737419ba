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
    /// <summary>Elements per statistics block (64 KiB of float): the second pass over a block reads from L2, and the per-block merge is amortised over many rows.</summary>
    internal const int BlockElements = 16384;

    /// <summary>Fewest rows in a channels-last block, bounding the per-block merge cost for wide rows.</summary>
    internal const int MinBlockRows = 16;

    /// <summary>
    /// Elements per block for rows wider than four vectors: each block costs a few operations per channel (clearing,
    /// scaling, merging), so wide rows take larger blocks (256 KiB of float, read the second time from L2).
    /// </summary>
    internal const int WideBlockElements = 65536;

    /// <summary>Fewest rows in a channels-last block summed once around the running mean (see MomentsChannelsLast).</summary>
    internal const int ShiftedBlockRows = 128;

    /// <summary>
    /// Bytes of each per-channel array (accumulators, coefficients) that a pass over wide rows keeps in L1 at once: wider
    /// rows are walked a tile of channels at a time down the rows (<see cref="WideShiftedSums"/>, and the gradient sums
    /// and dx from memory).
    /// </summary>
    internal const int WideTileBytes = 4096;

    /// <summary>
    /// The least distance, in bytes, at which the wide-row statistics loops prefetch rows ahead of the ones they sum
    /// (<see cref="RowsAhead{T}"/>). Four rows, the next group, was too close on short rows: a copy of the four-row
    /// shifted sums on double [100352, 64] (rows of 512 bytes), from memory, fastest of 16 rounds against a copy in ABBA
    /// order (seventeenth session), took 0.80x prefetching 2 KiB ahead, 0.65x at 4 KiB, 0.48-0.55x at 8 KiB and
    /// 0.49-0.64x at 16 and 32 KiB (a plain read: 0.44-0.48x); on [25088, 256] 0.86-1.19x at 2 KiB, 0.49-0.52x at 8 KiB.
    /// </summary>
    internal const int RowsAheadBytes = 8192;

    /// <summary>
    /// Per-channel mean and biased (population) variance of <paramref name="x"/> laid out as <paramref name="layout"/>:
    /// <c>mean = sum(x) / n</c>, <c>variance = sum((x - mean)^2) / n</c>, n = <c>layout.CountPerChannel</c> (&gt; 0).
    /// </summary>
    /// <remarks>
    /// Robust by construction, never <c>E[x^2] - E[x]^2</c>: the data is cut into blocks of rows (or runs), each summed
    /// around a shift <c>k</c> as <c>S1 = sum(x - k)</c> and <c>S2 = sum((x - k)^2)</c>, which give the block's mean
    /// <c>k + S1/m</c> and squared deviations <c>S2 - S1^2/m</c>. The first block of a stripe takes as <c>k</c> its own
    /// mean (a short block read twice; rows of at most four vectors) or the mean of the input's first 16 rows (a
    /// full-length block; wider rows); later blocks take the running mean and are read once. A block whose given shift
    /// proves more than 1.5 block standard deviations from its mean is read again around its own mean. Blocks are merged
    /// in double precision with Chan et al.'s pairwise update. The variance is never negative. Small channels-last
    /// batches (<see cref="IsSmallBatch{T}"/>) are instead read twice in double precision: the exact two-pass mean and M2.
    /// <paramref name="endOnLastRows"/> tells a striped pass (<see cref="StripedMomentsChannelsLast{T}"/>) that the pass
    /// after it starts on the last rows; it changes the order the stripes are read in, never the result.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Moments<T>(
        ReadOnlySpan<T> x, ChannelLayout layout, Span<double> mean, Span<double> variance, VectorWidth width, int maxDegree = 1, bool endOnLastRows = false)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Debug.Assert(x.Length == layout.Length && layout.CountPerChannel > 0);
        Debug.Assert(mean.Length == layout.Channels && variance.Length == layout.Channels);

        // variance holds the running sum of squared deviations (M2) until the end.
        MeansAndSquaredDeviations(x, layout, mean, variance, width, maxDegree, endOnLastRows);
        DivideAll(variance, layout.CountPerChannel);
    }

    /// <summary><see cref="Moments{T}"/> before the division: the mean and M2 = sum((x - mean)^2) per channel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MeansAndSquaredDeviations<T>(
        ReadOnlySpan<T> x, ChannelLayout layout, Span<double> mean, Span<double> m2, VectorWidth width, int maxDegree, bool endOnLastRows = false)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (IsSmallBatch<T>(layout))
        {
            SmallMeansAndSquaredDeviations(x, layout.Outer, layout.Channels, mean, m2, width);
            return;
        }

        // Float only: merging the parts' means costs the merge up to an ulp of the mean per part, which float data
        // never sees but double data far from zero does ([512, 5] at offset -3e4, spread 0.5: 9e-14 relative against
        // 4e-14 unfolded), so double keeps the unfolded path.
        ChannelFold fold = typeof(T) == typeof(float) ? ChannelFold.For<T>(layout, width) : default;
        if (fold.IsFolded)
        {
            FoldedMeansAndSquaredDeviations(x, fold, mean, m2, width, maxDegree);
            return;
        }

        bool prefetch = Prefetch.IsWorthIt<T>(layout.Length, Prefetch.ForwardTensors);
        if (layout.IsChannelsLast && Partition.IsLarge(layout))
        {
            StripedMomentsChannelsLast(x, layout, mean, m2, width, maxDegree, prefetch, endOnLastRows);
        }
        else if (layout.IsChannelsLast)
        {
            MomentsChannelsLast(x, layout.Outer, layout.Channels, mean, m2, width, prefetch);
        }
        else
        {
            int groups = Partition.IsLarge(layout) ? Partition.Degree(maxDegree, layout.Channels) : 1;
            if (groups == 1)
            {
                MomentsChannelsFirst(x, layout, 0, layout.Channels, mean, m2, width, prefetch);
            }
            else
            {
                ParallelMomentsChannelsFirst(x, layout, groups, mean, m2, width, prefetch);
            }
        }
    }

    /// <summary>
    /// Rows a channels-last batch of double may have for <see cref="SmallMeansAndSquaredDeviations{T}"/>; float, which
    /// that path widens to half as many lanes, half as many.
    /// </summary>
    internal const int SmallBatchRows = 16;

    /// <summary>Bytes a channels-last batch may take for <see cref="SmallMeansAndSquaredDeviations{T}"/>.</summary>
    internal const int SmallBatchBytes = 16384;

    /// <summary>
    /// Whether <paramref name="layout"/> is a small channels-last batch (at most <see cref="SmallBatchRows"/> rows of
    /// double or half as many of float, and at most <see cref="SmallBatchBytes"/> bytes), whose statistics take the two
    /// plain reads of <see cref="SmallMeansAndSquaredDeviations{T}"/>. It depends on the shape only.
    /// </summary>
    internal static unsafe bool IsSmallBatch<T>(ChannelLayout layout)
        where T : unmanaged =>
        layout.IsChannelsLast && (long)layout.Outer * sizeof(double) <= SmallBatchRows * sizeof(T) && (long)layout.Length * sizeof(T) <= SmallBatchBytes;

    /// <summary>
    /// The mean and M2 of a small channels-last batch (<see cref="IsSmallBatch{T}"/>), each channel in double precision
    /// from two reads of its column: <c>mean = sum(x) / n</c>, then <c>M2 = sum((x - mean)^2)</c>, the even and the odd
    /// rows summed apart and then added (two chains of additions in flight). Every lane does the same operations in the
    /// same order at every width, so the bits do not depend on the width. The block machinery of the larger batches
    /// (scratch, shifts, merges) costs more than the data at these sizes. The layer's training forward, two builds
    /// alternating in one process (thirty-third session, both slot orders, new over old): float32 [8, 16] 0.78-0.89,
    /// [4, 256] 0.82-0.86, [2, 1024] 0.75-0.82, float64 [8, 16] 0.80-0.88, [16, 64] 0.63-0.73. Float is widened to half
    /// the lanes, so its rows are limited to half as many: taking float32 [16, 64] this way made it 1.03-1.15 times slower.
    /// </summary>
    private static void SmallMeansAndSquaredDeviations<T>(ReadOnlySpan<T> x, int rows, int channels, Span<double> mean, Span<double> m2, VectorWidth width)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Debug.Assert(rows > 0 && x.Length == rows * channels);
        ref T src = ref MemoryMarshal.GetReference(x);
        ref double mu = ref MemoryMarshal.GetReference(mean);
        ref double sq = ref MemoryMarshal.GetReference(m2);
        int c = width switch
        {
            VectorWidth.Vector512 => SmallMoments<Vector512<double>, Vector512Ops<double>, T>(ref src, rows, channels, 0, ref mu, ref sq),
            VectorWidth.Vector256 => SmallMoments<Vector256<double>, Vector256Ops<double>, T>(ref src, rows, channels, 0, ref mu, ref sq),
            VectorWidth.Vector128 => SmallMoments<Vector128<double>, Vector128Ops<double>, T>(ref src, rows, channels, 0, ref mu, ref sq),
            _ => 0,
        };
        SmallMoments<double, ScalarOps<double>, T>(ref src, rows, channels, c, ref mu, ref sq);
    }

    /// <summary>
    /// The channels from <paramref name="start"/> of <see cref="SmallMeansAndSquaredDeviations{T}"/>, four vectors at a
    /// time, then two, then one (eight chains of additions in flight, four or two); returns where it stopped. Two at a time
    /// took float64 [8, 16]'s training forward to 0.87-0.93 of its time with one at a time (thirty-fifth session).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int SmallMoments<TVec, TOps, T>(ref T x, int rows, int channels, int start, ref double mean, ref double m2)
        where TVec : struct
        where TOps : IVectorOps<TVec, double>
        where T : unmanaged
    {
        int lanes = TOps.Count;
        int c = start;
        for (; c <= channels - (4 * lanes); c += 4 * lanes)
        {
            SmallColumns<TVec, TOps, T, FourChunks>(ref x, rows, channels, c, ref mean, ref m2);
        }

        for (; c <= channels - (2 * lanes); c += 2 * lanes)
        {
            SmallColumns<TVec, TOps, T, TwoChunks>(ref x, rows, channels, c, ref mean, ref m2);
        }

        for (; c <= channels - lanes; c += lanes)
        {
            SmallColumns<TVec, TOps, T, OneChunk>(ref x, rows, channels, c, ref mean, ref m2);
        }

        return c;
    }

    /// <summary>
    /// One, two or four vectors of channels from <paramref name="c"/> of <see cref="SmallMoments{TVec, TOps, T}"/>: their mean
    /// into <paramref name="mean"/> and their M2 into <paramref name="m2"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SmallColumns<TVec, TOps, T, TChunks>(ref T x, int rows, int channels, int c, ref double mean, ref double m2)
        where TVec : struct
        where TOps : IVectorOps<TVec, double>
        where T : unmanaged
        where TChunks : IChunkCount
    {
        bool two = TChunks.Value >= 2;
        bool four = TChunks.Value == 4;
        nuint l1 = (nuint)TOps.Count, l2 = 2 * l1, l3 = 3 * l1;
        nuint stride = (nuint)channels;
        nuint start = (nuint)c;

        // The even rows in e*, the odd rows in o*.
        TVec e0 = TOps.Zero, e1 = TOps.Zero, e2 = TOps.Zero, e3 = TOps.Zero;
        TVec o0 = TOps.Zero, o1 = TOps.Zero, o2 = TOps.Zero, o3 = TOps.Zero;
        nuint i = start;
        int r = 0;
        for (; r + 1 < rows; r += 2, i += 2 * stride)
        {
            e0 = TOps.Add(e0, TOps.LoadWidened(ref x, i));
            o0 = TOps.Add(o0, TOps.LoadWidened(ref x, i + stride));
            if (two)
            {
                e1 = TOps.Add(e1, TOps.LoadWidened(ref x, i + l1));
                o1 = TOps.Add(o1, TOps.LoadWidened(ref x, i + stride + l1));
            }

            if (four)
            {
                e2 = TOps.Add(e2, TOps.LoadWidened(ref x, i + l2));
                o2 = TOps.Add(o2, TOps.LoadWidened(ref x, i + stride + l2));
                e3 = TOps.Add(e3, TOps.LoadWidened(ref x, i + l3));
                o3 = TOps.Add(o3, TOps.LoadWidened(ref x, i + stride + l3));
            }
        }

        if (r < rows)
        {
            e0 = TOps.Add(e0, TOps.LoadWidened(ref x, i));
            if (two)
            {
                e1 = TOps.Add(e1, TOps.LoadWidened(ref x, i + l1));
            }

            if (four)
            {
                e2 = TOps.Add(e2, TOps.LoadWidened(ref x, i + l2));
                e3 = TOps.Add(e3, TOps.LoadWidened(ref x, i + l3));
            }
        }

        TVec count = TOps.Broadcast(rows);
        TVec inverse = TOps.Broadcast(1.0 / rows);
        bool powerOfTwo = BitOperations.IsPow2(rows);
        TVec m0 = DivideExactly<TVec, TOps>(TOps.Add(e0, o0), count, inverse, powerOfTwo);
        TVec m1 = two ? DivideExactly<TVec, TOps>(TOps.Add(e1, o1), count, inverse, powerOfTwo) : m0;
        TVec m2v = four ? DivideExactly<TVec, TOps>(TOps.Add(e2, o2), count, inverse, powerOfTwo) : m0;
        TVec m3 = four ? DivideExactly<TVec, TOps>(TOps.Add(e3, o3), count, inverse, powerOfTwo) : m0;
        e0 = e1 = e2 = e3 = o0 = o1 = o2 = o3 = TOps.Zero;
        i = start;
        for (r = 0; r + 1 < rows; r += 2, i += 2 * stride)
        {
            e0 = AddSquare<TVec, TOps, T>(e0, ref x, i, m0);
            o0 = AddSquare<TVec, TOps, T>(o0, ref x, i + stride, m0);
            if (two)
            {
                e1 = AddSquare<TVec, TOps, T>(e1, ref x, i + l1, m1);
                o1 = AddSquare<TVec, TOps, T>(o1, ref x, i + stride + l1, m1);
            }

            if (four)
            {
                e2 = AddSquare<TVec, TOps, T>(e2, ref x, i + l2, m2v);
                o2 = AddSquare<TVec, TOps, T>(o2, ref x, i + stride + l2, m2v);
                e3 = AddSquare<TVec, TOps, T>(e3, ref x, i + l3, m3);
                o3 = AddSquare<TVec, TOps, T>(o3, ref x, i + stride + l3, m3);
            }
        }

        if (r < rows)
        {
            e0 = AddSquare<TVec, TOps, T>(e0, ref x, i, m0);
            if (two)
            {
                e1 = AddSquare<TVec, TOps, T>(e1, ref x, i + l1, m1);
            }

            if (four)
            {
                e2 = AddSquare<TVec, TOps, T>(e2, ref x, i + l2, m2v);
                e3 = AddSquare<TVec, TOps, T>(e3, ref x, i + l3, m3);
            }
        }

        TOps.Store(m0, ref mean, start);
        TOps.Store(TOps.Add(e0, o0), ref m2, start);
        if (two)
        {
            TOps.Store(m1, ref mean, start + l1);
            TOps.Store(TOps.Add(e1, o1), ref m2, start + l1);
        }

        if (four)
        {
            TOps.Store(m2v, ref mean, start + l2);
            TOps.Store(TOps.Add(e2, o2), ref m2, start + l2);
            TOps.Store(m3, ref mean, start + l3);
            TOps.Store(TOps.Add(e3, o3), ref m2, start + l3);
        }
    }

    /// <summary><c>sum + (x[i] - m)^2</c>, x widened to double.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TVec AddSquare<TVec, TOps, T>(TVec sum, ref T x, nuint i, TVec m)
        where TVec : struct
        where TOps : IVectorOps<TVec, double>
        where T : unmanaged
    {
        TVec d = TOps.Subtract(TOps.LoadWidened(ref x, i), m);
        return TOps.Add(sum, TOps.Multiply(d, d));
    }

    /// <summary>
    /// <c>value / divisor</c>, as a multiplication by <paramref name="inverse"/> (<c>1 / divisor</c>) when the divisor is a
    /// power of two (<paramref name="powerOfTwo"/>): the inverse is then exact and so is the product, bit for bit the
    /// quotient, at a fraction of a division's latency.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TVec DivideExactly<TVec, TOps>(TVec value, TVec divisor, TVec inverse, bool powerOfTwo)
        where TVec : struct
        where TOps : IVectorOps<TVec, double> => powerOfTwo ? TOps.Multiply(value, inverse) : TOps.Divide(value, divisor);

    /// <summary>
    /// Few channels, channels last (<see cref="ChannelFold"/>): the mean and M2 of each super-channel of the folded rows,
    /// then of the remaining rows, merged per channel in that order.
    /// </summary>
    private static void FoldedMeansAndSquaredDeviations<T>(ReadOnlySpan<T> x, ChannelFold fold, Span<double> mean, Span<double> m2, VectorWidth width, int maxDegree)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int channels = mean.Length;
        int parts = fold.Factor + (fold.Tail.Outer != 0 ? 1 : 0);
        Span<double> partMean = stackalloc double[parts * channels];
        Span<double> partM2 = stackalloc double[parts * channels];
        Span<double> counts = stackalloc double[parts];
        int folded = fold.Folded.Channels;
        MeansAndSquaredDeviations(x[..fold.FoldedLength], fold.Folded, partMean[..folded], partM2[..folded], width, maxDegree);
        counts[..fold.Factor].Fill(fold.Folded.Outer);
        if (fold.Tail.Outer != 0)
        {
            MeansAndSquaredDeviations(x[fold.FoldedLength..], fold.Tail, partMean[folded..], partM2[folded..], width, 1);
            counts[fold.Factor] = fold.Tail.Outer;
        }

        Partition.MergeParts(partMean, partM2, counts, channels, mean, m2);
    }

    /// <summary>
    /// <c>values[c] /= divisor</c>, a vector of channels at a time (a division per channel is a real cost for small
    /// batches; <see cref="DivideExactly{TVec, TOps}"/> multiplies instead when the divisor is a power of two).
    /// </summary>
    internal static void DivideAll(Span<double> values, double divisor)
    {
        var loop = new DivideLoop(values, divisor);
        ChannelLoop.Run(ref loop);
    }

    /// <summary>The loop of <see cref="DivideAll"/>.</summary>
    private readonly ref struct DivideLoop(Span<double> values, double divisor) : IChannelLoop
    {
        private readonly Span<double> _values = values;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Run<TVec, TOps>(int start)
            where TVec : struct
            where TOps : IVectorOps<TVec, double>
        {
            ref double v = ref MemoryMarshal.GetReference(_values);
            TVec d = TOps.Broadcast(divisor);
            TVec inverse = TOps.Broadcast(1.0 / divisor);
            bool powerOfTwo = double.IsPow2(divisor);
            int c = start;
            for (; c <= _values.Length - TOps.Count; c += TOps.Count)
            {
                TOps.Store(DivideExactly<TVec, TOps>(TOps.Load(ref v, (nuint)c), d, inverse, powerOfTwo), ref v, (nuint)c);
            }

            return c;
        }
    }

    /// <summary>
    /// Channel-not-last inputs split by channel group: each channel is reduced entirely by one thread, in the same order
    /// as on one thread.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ParallelMomentsChannelsFirst<T>(ReadOnlySpan<T> x, ChannelLayout layout, int groups, Span<double> mean, Span<double> m2, VectorWidth width, bool prefetch)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        fixed (T* px = x)
        fixed (double* pm = mean)
        fixed (double* pv = m2)
        {
            Partition.For(groups, groups, new ChannelGroupMoments<T>(px, layout, groups, pm, pv, width, prefetch));
        }
    }

    /// <summary>One channel group of <see cref="ParallelMomentsChannelsFirst{T}"/> (the buffers are pinned by the caller).</summary>
    private readonly unsafe struct ChannelGroupMoments<T>(T* x, ChannelLayout layout, int groups, double* mean, double* m2, VectorWidth width, bool prefetch) : IPartBody
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int group)
        {
            int c0 = (int)((long)layout.Channels * group / groups);
            int c1 = (int)((long)layout.Channels * (group + 1) / groups);
            MomentsChannelsFirst(
                new ReadOnlySpan<T>(x, layout.Length), layout, c0, c1,
                new Span<double>(mean, layout.Channels), new Span<double>(m2, layout.Channels), width, prefetch);
        }
    }

    /// <summary>
    /// Large channels-last inputs: fixed stripes of rows (the partition depends on the shape only), each reduced on its
    /// own, then merged in stripe order, so the result is the same bits for any number of threads.
    /// </summary>
    /// <remarks>
    /// The stripes are read last to first (on one thread, and in the order the helpers take them), so that the pass
    /// ends on the first rows, the ones the normalization pass after it reads first: they are still in cache, where a
    /// pass in the same direction would find its start evicted by the end. Measured in one process, alternating the two
    /// orders (float32, training forward, medians): on one thread up to 7% faster ([32,56,56,64] 1.93-2.35 ms to
    /// 1.87-2.24 ms, [256,1024] 0.6-3%), on two threads 7-14% ([64,7,7,2048] 1.69-1.74 ms to 1.51-1.53 ms). The merge
    /// order, and so the bits, do not change.
    /// <para>
    /// With <paramref name="endOnLastRows"/> (the normalization walks from the last row, <see cref="AffineWalksDown{T}"/>)
    /// they are read first to last instead. Float32 [256,1024] in cache, the layer's training forward, the two orders
    /// alternating in one process, four processes (forty-ninth session): 48.1-49.6 us against 48.9-50.2 us.
    /// </para>
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void StripedMomentsChannelsLast<T>(
        ReadOnlySpan<T> x, ChannelLayout layout, Span<double> mean, Span<double> m2, VectorWidth width, int maxDegree, bool prefetch, bool endOnLastRows)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int channels = layout.Channels;
        int stripes = Partition.StripeCount(layout);
        double[] partMean = ArrayPool<double>.Shared.Rent(stripes * channels);
        double[] partM2 = ArrayPool<double>.Shared.Rent(stripes * channels);
        double[] counts = ArrayPool<double>.Shared.Rent(stripes);
        T[]? firstShift = IsWide<T>(channels, width) ? ArrayPool<T>.Shared.Rent(channels) : null;
        try
        {
            if (firstShift is not null)
            {
                FirstRowsMean(x, layout.Outer, channels, firstShift.AsSpan(0, channels), width, prefetch);
            }

            int degree = Partition.Degree(maxDegree, stripes);
            if (degree == 1)
            {
                for (int i = 0; i < stripes; i++)
                {
                    MomentStripe(x, layout, endOnLastRows ? i : stripes - 1 - i, partMean, partM2, counts, firstShift, width, prefetch);
                }
            }
            else
            {
                ParallelMomentStripes(x, layout, stripes, degree, partMean, partM2, counts, firstShift, width, prefetch, endOnLastRows);
            }

            Partition.MergeParts(partMean, partM2, counts.AsSpan(0, stripes), channels, mean, m2);
        }
        finally
        {
            ArrayPool<double>.Shared.Return(partMean);
            ArrayPool<double>.Shared.Return(partM2);
            ArrayPool<double>.Shared.Return(counts);
            if (firstShift is not null)
            {
                ArrayPool<T>.Shared.Return(firstShift);
            }
        }
    }

    /// <summary>
    /// Whether channels-last rows of <paramref name="channels"/> are wide at <paramref name="width"/> for the statistics:
    /// <see cref="IsWideRow"/> at the lanes they are summed with (one where a row is narrower than a vector and is summed
    /// one channel at a time).
    /// </summary>
    private static bool IsWide<T>(int channels, VectorWidth width)
        where T : unmanaged
    {
        int lanes = VectorWidths.Lanes<T>(width);
        return IsWideRow(channels, channels < lanes ? 1 : lanes);
    }

    /// <summary>
    /// Whether rows of <paramref name="channels"/> summed <paramref name="lanes"/> at a time are wide: more than four
    /// vectors, the rows whose first block is shifted by the mean of its first rows.
    /// </summary>
    private static bool IsWideRow(int channels, int lanes) => channels > 4 * lanes;

    /// <summary>
    /// The mean of the first <see cref="MinBlockRows"/> rows of a wide channels-last input, in T, into
    /// <paramref name="shift"/>: the shift of every stripe's first block (<see cref="StripedMomentsChannelsLast{T}"/>).
    /// </summary>
    /// <remarks>
    /// Each stripe took the mean of its own first rows, one more read of them from memory before its sums: skipping it
    /// (timing only) took the statistics of float64 [3136, 2048] to 0.85-0.87 of their time (thirty-eighth session). One
    /// shift for all is what a stripe's later blocks already get (the running mean) and passes the same check, so a
    /// stripe far from the first rows' mean is read again around its own. It is computed once for any number of threads,
    /// so the result stays the same bits for every thread count.
    /// </remarks>
    private static void FirstRowsMean<T>(ReadOnlySpan<T> x, int rows, int channels, Span<T> shift, VectorWidth width, bool prefetch)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref T src = ref MemoryMarshal.GetReference(x);
        ref T s = ref MemoryMarshal.GetReference(shift);
        var all = new AllRows(rows);
        int count = Math.Min(MinBlockRows, rows);
        int lanes = VectorWidths.Lanes<T>(width);
        switch (channels < lanes ? VectorWidth.Scalar : width)
        {
            case VectorWidth.Vector512:
                WideBlockMean<Vector512<T>, Vector512Ops<T>, T, AllRows>(ref src, all, 0, count, channels, ref s, prefetch);
                break;
            case VectorWidth.Vector256:
                WideBlockMean<Vector256<T>, Vector256Ops<T>, T, AllRows>(ref src, all, 0, count, channels, ref s, prefetch);
                break;
            case VectorWidth.Vector128:
                WideBlockMean<Vector128<T>, Vector128Ops<T>, T, AllRows>(ref src, all, 0, count, channels, ref s, prefetch);
                break;
            default:
                WideBlockMean<T, ScalarOps<T>, T, AllRows>(ref src, all, 0, count, channels, ref s, prefetch);
                break;
        }
    }

    /// <summary>One stripe of <see cref="StripedMomentsChannelsLast{T}"/>: its rows' mean and M2 into the stripe's slots.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MomentStripe<T>(
        ReadOnlySpan<T> x, ChannelLayout layout, int stripe, double[] partMean, double[] partM2, double[] counts, T[]? firstShift, VectorWidth width, bool prefetch)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int channels = layout.Channels;
        int stripeRows = Partition.StripeRows(channels);
        int r0 = stripe * stripeRows;
        int rows = Math.Min(stripeRows, layout.Outer - r0);
        MomentsChannelsLast(
            x.Slice(r0 * channels, rows * channels), rows, channels,
            partMean.AsSpan(stripe * channels, channels), partM2.AsSpan(stripe * channels, channels), width, prefetch,
            firstShift is null ? default : firstShift.AsSpan(0, channels));
        counts[stripe] = rows;
    }

    /// <summary>The stripes on several threads.</summary>
    private static unsafe void ParallelMomentStripes<T>(
        ReadOnlySpan<T> x, ChannelLayout layout, int stripes, int degree, double[] partMean, double[] partM2, double[] counts, T[]? firstShift,
        VectorWidth width, bool prefetch, bool endOnLastRows)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        fixed (T* px = x)
        {
            Partition.For(stripes, degree, new MomentStripes<T>(px, layout, partMean, partM2, counts, firstShift, width, prefetch, endOnLastRows));
        }
    }

    /// <summary>One stripe of <see cref="ParallelMomentStripes{T}"/> (the input is pinned by the caller).</summary>
    private readonly unsafe struct MomentStripes<T>(
        T* x, ChannelLayout layout, double[] partMean, double[] partM2, double[] counts, T[]? firstShift, VectorWidth width, bool prefetch,
        bool endOnLastRows) : IPartBody
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int part) => MomentStripe(
            new ReadOnlySpan<T>(x, layout.Length), layout, endOnLastRows ? part : Partition.StripeCount(layout) - 1 - part, partMean, partM2, counts,
            firstShift, width, prefetch);
    }

    /// <summary>Mean and M2 of a channels-last <c>[rows, C]</c> span on the calling thread.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MomentsChannelsLast<T>(
        ReadOnlySpan<T> x, int rows, int channels, Span<double> mean, Span<double> m2, VectorWidth width, bool prefetch, ReadOnlySpan<T> firstShift = default)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        // No clearing of mean and m2: the first block is merged into a running mean and M2 of zero written directly.
        Debug.Assert(rows > 0);
        ref T src = ref MemoryMarshal.GetReference(x);
        T[]? rented = null;
        bool wide = IsWide<T>(channels, width);
        int length = MomentArraysLength<T>(channels, wide);

        // Wide rows in cache that share a phase are summed in aligned vectors from it (WideShiftedSums), and the shift and
        // sums are placed so that their element `phase` starts a line too (the three arrays are C apart, a whole number of
        // vectors, so they share the phase). Wide rows store the sums beside every four-row group's loads of x, so the
        // sums do not start just above x's page offset either (AlignAtClearOf): where the pool's array fell decided it
        // before. On the Zen 4 machine, float32 [256,1024] in cache, x placed so that the pool's array put the sums 64,
        // 128 and 192 bytes above x's aligned offset, the statistics took 31-35, 29-30 and 26 us, and 20, 25 and 25 us
        // slid clear (the same process, alternating; fastest of 15 rounds; 18-25 us at other placements). A plain
        // four-row loop took 33, 24, 20 and 17 us with its sums 64, 128, 256 and 1024 bytes above x's, 17-18 us below.
        //
        // Wide rows' shift and sums are further placed a quarter page apart, not end to end (PlaceMomentArrays).
        int lanes = VectorWidths.Lanes<T>(width);
        int phase = !prefetch && channels > 4 * lanes ? Math.Max(0, RowPhase.Of<T>(x, rows, channels, lanes)) : 0;
        Span<T> buffer = channels <= StackChannels ? stackalloc T[length] : (rented = ArrayPool<T>.Shared.Rent(length));
        int start = PlaceMomentArrays(buffer[..length], phase, channels, wide, CacheLine.PageOffset(in Unsafe.Add(ref src, phase)), out int sum1At, out int sum2At);
        Span<T> scratch = buffer[start..length];

        try
        {
            switch (width)
            {
                case VectorWidth.Vector512:
                    MomentsChannelsLast<Vector512<T>, Vector512Ops<T>, T, AllRows>(ref src, new AllRows(rows), channels, mean, m2, scratch, prefetch, phase, firstShift, sum1At, sum2At);
                    break;
                case VectorWidth.Vector256:
                    MomentsChannelsLast<Vector256<T>, Vector256Ops<T>, T, AllRows>(ref src, new AllRows(rows), channels, mean, m2, scratch, prefetch, phase, firstShift, sum1At, sum2At);
                    break;
                case VectorWidth.Vector128:
                    MomentsChannelsLast<Vector128<T>, Vector128Ops<T>, T, AllRows>(ref src, new AllRows(rows), channels, mean, m2, scratch, prefetch, phase, firstShift, sum1At, sum2At);
                    break;
                default:
                    MomentsChannelsLast<T, ScalarOps<T>, T, AllRows>(ref src, new AllRows(rows), channels, mean, m2, scratch, prefetch, 0, firstShift, sum1At, sum2At);
                    break;
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<T>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Elements a buffer needs for <see cref="PlaceMomentArrays{T}"/>.</summary>
    internal static int MomentArraysLength<T>(int channels, bool wide)
        where T : unmanaged => (3 * channels) + (wide ? CacheLine.SpreadSlack<T>(3) : CacheLine.Slack<T>() + CacheLine.SlideSlack<T>());

    /// <summary>
    /// Places the statistics' shift, sum1 and sum2 (C each) in <paramref name="buffer"/> (<see cref="MomentArraysLength{T}"/>
    /// elements), with element <paramref name="index"/> of each on a line, beside x's stream at page offset
    /// <paramref name="xOffset"/>. Returns where the shift starts in the buffer, and gives sum1's and sum2's offsets from it.
    /// <paramref name="wide"/> rows (stored beside every data vector) take the three a quarter page apart from a quarter
    /// above x (<see cref="CacheLine.SpreadAcrossPage{T}"/>); others C apart, the sums slid clear of just above x's rows
    /// (<see cref="CacheLine.AlignAtClearOf{T}"/>).
    /// </summary>
    internal static int PlaceMomentArrays<T>(Span<T> buffer, int index, int channels, bool wide, int xOffset, out int sum1At, out int sum2At)
        where T : unmanaged
    {
        if (wide)
        {
            Span<int> starts = stackalloc int[3];
            CacheLine.SpreadAcrossPage<T>(buffer, index, channels, CacheLine.QuarterAbove(xOffset), starts);
            sum1At = starts[1] - starts[0];
            sum2At = starts[2] - starts[0];
            return starts[0];
        }

        sum1At = channels;
        sum2At = 2 * channels;
        Span<T> placed = CacheLine.AlignAtClearOf(buffer, index, 3 * channels, [xOffset], channels * Unsafe.SizeOf<T>(), [index + channels, index + (2 * channels)]);
        return (int)(Unsafe.ByteOffset(ref MemoryMarshal.GetReference(buffer), ref MemoryMarshal.GetReference(placed)) / Unsafe.SizeOf<T>());
    }

    /// <summary>Mean and M2 of channels [c0, c1) of a channel-not-last layout, on the calling thread.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MomentsChannelsFirst<T>(ReadOnlySpan<T> x, ChannelLayout layout, int c0, int c1, Span<double> mean, Span<double> m2, VectorWidth width, bool prefetch)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (HasShortRuns<T>(layout))
        {
            ShortRunMoments(x, layout, c0, c1, mean, m2, width, prefetch);
            return;
        }

        mean[c0..c1].Clear();
        m2[c0..c1].Clear();
        ref T src = ref MemoryMarshal.GetReference(x);
        switch (width)
        {
            case VectorWidth.Vector512:
                MomentsChannelsFirst<Vector512<T>, Vector512Ops<T>, T>(ref src, layout, c0, c1, mean, m2, prefetch);
                break;
            case VectorWidth.Vector256:
                MomentsChannelsFirst<Vector256<T>, Vector256Ops<T>, T>(ref src, layout, c0, c1, mean, m2, prefetch);
                break;
            case VectorWidth.Vector128:
                MomentsChannelsFirst<Vector128<T>, Vector128Ops<T>, T>(ref src, layout, c0, c1, mean, m2, prefetch);
                break;
            default:
                MomentsChannelsFirst<T, ScalarOps<T>, T>(ref src, layout, c0, c1, mean, m2, prefetch);
                break;
        }
    }

    /// <summary>
    /// Channels last, <c>[rows, C]</c>: vectors run across channels, blocks of rows are merged. <paramref name="rows"/>
    /// selects the rows that count (all of them, or the unmasked ones). Both passes over a block walk it row by row
    /// (sequential memory); rows of at most four vectors keep every accumulator in registers, wider rows accumulate into
    /// per-channel arrays that stay in L1.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MomentsChannelsLast<TVec, TOps, T, TRows>(
        ref T x, TRows rows, int channels, Span<double> mean, Span<double> m2, Span<T> scratch, bool prefetch, int phase = 0,
        ReadOnlySpan<T> firstShift = default, int sum1At = 0, int sum2At = 0)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TRows : IRowSelection, allows ref struct
    {
        int width = TOps.Count;
        if (channels < width)
        {
            MomentsChannelsLast<T, ScalarOps<T>, T, TRows>(ref x, rows, channels, mean, m2, scratch, prefetch, 0, firstShift, sum1At, sum2At);
            return;
        }

        // The shift, then sum1 and sum2 at sum1At and sum2At (C and 2C when not given).
        ref T shift = ref MemoryMarshal.GetReference(scratch);
        ref T sum1 = ref Unsafe.Add(ref shift, sum1At > 0 ? sum1At : channels);
        ref T sum2 = ref Unsafe.Add(ref shift, sum2At > 0 ? sum2At : 2 * channels);
        int blockRows = channels <= 4 * width
            ? Math.Max(MinBlockRows, BlockElements / channels)
            : Math.Max(MinBlockRows, WideBlockElements / channels);

        // The first block is short and read twice (its own mean is its shift); every later block is read once, shifted
        // by the running mean, and read a second time only if that shift turns out too far from the block's mean.
        // Blocks read once need not fit in cache, so they are made at least ShiftedBlockRows long: each block costs a
        // few operations per channel (shift, check, merge), which for thousands of channels is not negligible.
        //
        // Wide rows instead make the first block as long as the later ones, shifted by the mean of its first rows (one
        // read of those rows, no sums): a block fewer per stripe saves its per-channel steps (clearing, the check, the
        // merge; on [32, 1024] float32 the training forward went from 5.5-5.8x a copy to 5.2-5.3x). That shift gets the
        // same check as the running mean, and the block is read again around its own mean if it fails. A stripe of a large
        // input is given that shift (firstShift: the mean of the input's first rows, computed once for all stripes), so
        // that it reads none of its rows twice.
        bool wide = IsWideRow(channels, width);
        int firstRows = Math.Min(MinBlockRows, rows.Count);
        int shiftedRows = Math.Max(blockRows, ShiftedBlockRows);
        for (int r0 = 0; r0 < rows.Count;)
        {
            int blockCount = r0 == 0 && !wide ? firstRows : Math.Min(shiftedRows, rows.Count - r0);
            bool shifted = false;

            if (r0 != 0)
            {
                ChannelVector.Narrow<T>(mean, MemoryMarshal.CreateSpan(ref shift, channels));
                BlockSums<TVec, TOps, T, TRows>(ref x, rows, r0, blockCount, channels, ref shift, ref sum1, ref sum2, prefetch, givenShift: true, phase);
                shifted = ShiftWasClose(ref sum1, ref sum2, channels, blockCount);
            }
            else if (wide && blockCount > firstRows)
            {
                if (firstShift.IsEmpty)
                {
                    WideBlockMean<TVec, TOps, T, TRows>(ref x, rows, 0, firstRows, channels, ref shift, prefetch);
                }
                else
                {
                    firstShift.CopyTo(MemoryMarshal.CreateSpan(ref shift, channels));
                }

                BlockSums<TVec, TOps, T, TRows>(ref x, rows, 0, blockCount, channels, ref shift, ref sum1, ref sum2, prefetch, givenShift: true, phase);
                shifted = ShiftWasClose(ref sum1, ref sum2, channels, blockCount);
            }

            if (!shifted)
            {
                BlockSums<TVec, TOps, T, TRows>(ref x, rows, r0, blockCount, channels, ref shift, ref sum1, ref sum2, prefetch, givenShift: false, phase);
            }

            if (r0 == 0)
            {
                MergeBlocks<T, SwitchOn>(mean, m2, new BlockWeights(0, blockCount), ref shift, ref sum1, ref sum2);
            }
            else
            {
                MergeBlocks<T, SwitchOff>(mean, m2, new BlockWeights(r0, blockCount), ref shift, ref sum1, ref sum2);
            }

            r0 += blockCount;
        }
    }

    /// <summary>
    /// The shifted sums of one block: <c>sum1 = sum(x - shift)</c>, <c>sum2 = sum((x - shift)^2)</c> per channel. With
    /// <paramref name="givenShift"/> the shift is read from <paramref name="shift"/> and the block is read once;
    /// otherwise the block's own (T-rounded) mean is computed into it first, a second read.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BlockSums<TVec, TOps, T, TRows>(
        ref T x, TRows rows, int r0, int count, int channels, ref T shift, ref T sum1, ref T sum2, bool prefetch, bool givenShift, int phase)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TRows : IRowSelection, allows ref struct
    {
        int width = TOps.Count;
        if (channels > 4 * width)
        {
            WideBlockSums<TVec, TOps, T, TRows>(ref x, rows, r0, count, channels, ref shift, ref sum1, ref sum2, prefetch, givenShift, phase);
            return;
        }

        switch ((channels + width - 1) / width)
        {
            case 1:
                NarrowBlockSums<TVec, TOps, T, TRows, OneChunk>(ref x, rows, r0, count, channels, ref shift, ref sum1, ref sum2, prefetch, givenShift);
                break;
            case 2:
                NarrowBlockSums<TVec, TOps, T, TRows, TwoChunks>(ref x, rows, r0, count, channels, ref shift, ref sum1, ref sum2, prefetch, givenShift);
                break;
            case 3:
                NarrowBlockSums<TVec, TOps, T, TRows, ThreeChunks>(ref x, rows, r0, count, channels, ref shift, ref sum1, ref sum2, prefetch, givenShift);
                break;
            default:
                NarrowBlockSums<TVec, TOps, T, TRows, FourChunks>(ref x, rows, r0, count, channels, ref shift, ref sum1, ref sum2, prefetch, givenShift);
                break;
        }
    }

    /// <summary>
    /// Whether a block summed around a given shift keeps the accuracy of summing around its own mean: the block mean's
    /// distance from the shift, <c>delta = S1/m</c>, is at most 1.5 block standard deviations in the channel
    /// (<c>delta^2 &lt;= 2.25 (S2/m - delta^2)</c>, i.e. <c>13 S1^2 &lt;= 9 m S2</c>, in double). Then the squared
    /// deviations summed in T are at most 3.25 times their size around the mean and <c>S2 - S1^2/m</c> cancels at most
    /// 9/13 of S2: the error stays within a small factor of the two-read block's (typical shifts, from the running mean,
    /// are a fraction of a deviation). NaN or infinite sums fail it (the block is then summed the other way).
    /// </summary>
    private static bool ShiftWasClose(double sum1, double sum2, int count) => sum1 * sum1 * ShiftCheckSquares <= count * sum2 * ShiftCheckCount;

    /// <summary>The two sides' factors of the check in <see cref="ShiftWasClose(double, double, int)"/>.</summary>
    private const double ShiftCheckSquares = 13.0, ShiftCheckCount = 9.0;

    /// <summary><see cref="ShiftWasClose(double, double, int)"/> for every channel of a block of channels-last sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool ShiftWasClose<T>(ref T sum1, ref T sum2, int channels, int count)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var loop = new ShiftCheckLoop<T>(ref sum1, ref sum2, channels, count);
        ChannelLoop.Run(ref loop);
        return loop.Close;
    }

    /// <summary>The loop of <see cref="ShiftWasClose{T}(ref T, ref T, int, int)"/>: it stops at the first channel that fails.</summary>
    private ref struct ShiftCheckLoop<T>(ref T sum1, ref T sum2, int channels, int count) : IChannelLoop
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        private readonly ref T _sum1 = ref sum1;
        private readonly ref T _sum2 = ref sum2;

        public bool Close { get; private set; } = true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Run<TVec, TOps>(int start)
            where TVec : struct
            where TOps : IVectorOps<TVec, double>
        {
            TVec m = TOps.Broadcast(count);
            TVec squares = TOps.Broadcast(ShiftCheckSquares);
            TVec counts = TOps.Broadcast(ShiftCheckCount);
            int c = start;
            for (; c <= channels - TOps.Count; c += TOps.Count)
            {
                TVec s1 = TOps.LoadWidened(ref _sum1, (nuint)c);
                TVec s2 = TOps.LoadWidened(ref _sum2, (nuint)c);
                if (!TOps.LessThanOrEqualAll(TOps.Multiply(TOps.Multiply(s1, s1), squares), TOps.Multiply(TOps.Multiply(m, s2), counts)))
                {
                    Close = false;
                    return channels;
                }
            }

            return c;
        }
    }

    /// <summary>
    /// <see cref="MergeBlock"/> for every channel of a block, vectorised over channels (wide rows merge thousands of
    /// channels per block). Element-wise double arithmetic in the scalar order, so the bits match the scalar merge.
    /// The first block (<typeparamref name="TFirst"/> on) merges into a running mean and M2 of zero taken as constants,
    /// so that nobody clears them first: the same operations on the same values, so the same bits (a -0 or non-finite
    /// block comes out exactly as merged into cleared arrays). On [256, 1024] float32 dropping the clears and loads here
    /// and in <see cref="Partition.MergeParts"/> took the statistics from 14.0-16.0 us to 13.1-15.0 us (interleaved).
    /// </summary>
    private static void MergeBlocks<T, TFirst>(Span<double> mean, Span<double> m2, in BlockWeights w, ref T shift, ref T sum1, ref T sum2)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TFirst : struct, ISwitch
    {
        var loop = new MergeLoop<T, TFirst>(mean, m2, w, ref shift, ref sum1, ref sum2);
        ChannelLoop.Run(ref loop);
    }

    /// <summary>The loop of <see cref="MergeBlocks{T, TFirst}"/>: <see cref="MergeBlock"/> on each lane.</summary>
    private readonly ref struct MergeLoop<T, TFirst>(Span<double> mean, Span<double> m2, BlockWeights w, ref T shift, ref T sum1, ref T sum2) : IChannelLoop
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TFirst : struct, ISwitch
    {
        private readonly Span<double> _mean = mean;
        private readonly Span<double> _m2 = m2;
        private readonly ref T _shift = ref shift;
        private readonly ref T _sum1 = ref sum1;
        private readonly ref T _sum2 = ref sum2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Run<TVec, TOps>(int start)
            where TVec : struct
            where TOps : IVectorOps<TVec, double>
        {
            ref double mu = ref MemoryMarshal.GetReference(_mean);
            ref double sq = ref MemoryMarshal.GetReference(_m2);
            TVec inverse = TOps.Broadcast(w.InverseCount);
            TVec weight = TOps.Broadcast(w.Weight);
            TVec cross = TOps.Broadcast(w.CrossWeight);
            int c = start;
            for (; c <= _mean.Length - TOps.Count; c += TOps.Count)
            {
                nuint i = (nuint)c;
                TVec s1 = TOps.LoadWidened(ref _sum1, i);
                TVec running = TFirst.On ? TOps.Zero : TOps.Load(ref mu, i);
                TVec delta = TOps.Add(TOps.Subtract(TOps.LoadWidened(ref _shift, i), running), TOps.Multiply(s1, inverse));
                TVec blockM2 = TOps.Max(TOps.Zero, TOps.Subtract(TOps.LoadWidened(ref _sum2, i), TOps.Multiply(TOps.Multiply(s1, s1), inverse)));
                TOps.Store(TOps.Add(running, TOps.Multiply(delta, weight)), ref mu, i);
                TVec runningM2 = TFirst.On ? TOps.Zero : TOps.Load(ref sq, i);
                TOps.Store(TOps.Add(runningM2, TOps.Add(blockM2, TOps.Multiply(TOps.Multiply(delta, delta), cross))), ref sq, i);
            }

            return c;
        }
    }

    /// <summary>
    /// One block of rows of at most four vectors: <typeparamref name="TChunks"/> chunks at offsets 0, w, 2w, 3w clamped
    /// to C - w (an overlapping chunk computes identical per-channel values), every accumulator in registers. Rows of one
    /// or two chunks are taken in pairs with separate accumulators, so that the add chains do not bound the loop.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void NarrowBlockSums<TVec, TOps, T, TRows, TChunks>(
        ref T x, TRows rows, int r0, int count, int channels, ref T shift, ref T sum1, ref T sum2, bool prefetch, bool givenShift)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TRows : IRowSelection, allows ref struct
        where TChunks : IChunkCount
    {
        int width = TOps.Count;
        int chunks = TChunks.Value;
        bool paired = chunks <= 2;
        nuint c1 = (nuint)Math.Min(width, channels - width);
        nuint c2 = (nuint)Math.Min(2 * width, channels - width);
        nuint c3 = (nuint)Math.Min(3 * width, channels - width);

        // Paired rows: a0/a1 take the even row's chunks and a2/a3 the odd row's.
        TVec a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero;
        int r = givenShift ? count : 0;
        for (; paired && r + 1 < count; r += 2)
        {
            nuint row = RowOffset(rows, r0 + r, channels);
            nuint next = RowOffset(rows, r0 + r + 1, channels);
            if (prefetch)
            {
                PrefetchChunks(ref x, row, chunks, c1, c2, c3);
                PrefetchChunks(ref x, next, chunks, c1, c2, c3);
            }

            a0 = TOps.Add(a0, TOps.Load(ref x, row));
            a2 = TOps.Add(a2, TOps.Load(ref x, next));
            if (chunks == 2)
            {
                a1 = TOps.Add(a1, TOps.Load(ref x, row + c1));
                a3 = TOps.Add(a3, TOps.Load(ref x, next + c1));
            }
        }

        for (; r < count; r++)
        {
            nuint row = RowOffset(rows, r0 + r, channels);
            if (prefetch)
            {
                PrefetchChunks(ref x, row, chunks, c1, c2, c3);
            }

            a0 = TOps.Add(a0, TOps.Load(ref x, row));
            a1 = chunks > 1 ? TOps.Add(a1, TOps.Load(ref x, row + c1)) : a1;
            a2 = chunks > 2 ? TOps.Add(a2, TOps.Load(ref x, row + c2)) : a2;
            a3 = chunks > 3 ? TOps.Add(a3, TOps.Load(ref x, row + c3)) : a3;
        }

        if (paired)
        {
            a0 = TOps.Add(a0, a2);
            a1 = TOps.Add(a1, a3);
        }

        TVec k0, k1, k2, k3;
        if (givenShift)
        {
            k0 = TOps.Load(ref shift, 0);
            k1 = TOps.Load(ref shift, c1);
            k2 = TOps.Load(ref shift, c2);
            k3 = TOps.Load(ref shift, c3);
        }
        else
        {
            TVec inverse = TOps.Broadcast(T.One / T.CreateTruncating(count));
            k0 = TOps.Multiply(a0, inverse);
            k1 = TOps.Multiply(a1, inverse);
            k2 = TOps.Multiply(a2, inverse);
            k3 = TOps.Multiply(a3, inverse);
        }

        TVec s10 = TOps.Zero, s11 = TOps.Zero, s12 = TOps.Zero, s13 = TOps.Zero;
        TVec s20 = TOps.Zero, s21 = TOps.Zero, s22 = TOps.Zero, s23 = TOps.Zero;
        r = 0;
        for (; paired && r + 1 < count; r += 2)
        {
            nuint row = RowOffset(rows, r0 + r, channels);
            nuint next = RowOffset(rows, r0 + r + 1, channels);
            if (prefetch && givenShift)
            {
                // The only read of this block: prefetch as the first pass otherwise does.
                PrefetchChunks(ref x, row, chunks, c1, c2, c3);
                PrefetchChunks(ref x, next, chunks, c1, c2, c3);
            }

            TVec d0 = TOps.Subtract(TOps.Load(ref x, row), k0);
            TVec e0 = TOps.Subtract(TOps.Load(ref x, next), k0);
            s10 = TOps.Add(s10, d0);
            s12 = TOps.Add(s12, e0);
            s20 = TOps.Add(s20, TOps.Multiply(d0, d0));
            s22 = TOps.Add(s22, TOps.Multiply(e0, e0));
            if (chunks == 2)
            {
                TVec d1 = TOps.Subtract(TOps.Load(ref x, row + c1), k1);
                TVec e1 = TOps.Subtract(TOps.Load(ref x, next + c1), k1);
                s11 = TOps.Add(s11, d1);
                s13 = TOps.Add(s13, e1);
                s21 = TOps.Add(s21, TOps.Multiply(d1, d1));
                s23 = TOps.Add(s23, TOps.Multiply(e1, e1));
            }
        }

        for (; r < count; r++)
        {
            nuint row = RowOffset(rows, r0 + r, channels);
            if (prefetch && givenShift)
            {
                PrefetchChunks(ref x, row, chunks, c1, c2, c3);
            }

            TVec d0 = TOps.Subtract(TOps.Load(ref x, row), k0);
            s10 = TOps.Add(s10, d0);
            s20 = TOps.Add(s20, TOps.Multiply(d0, d0));
            if (chunks > 1)
            {
                TVec d1 = TOps.Subtract(TOps.Load(ref x, row + c1), k1);
                s11 = TOps.Add(s11, d1);
                s21 = TOps.Add(s21, TOps.Multiply(d1, d1));
            }

            if (chunks > 2)
            {
                TVec d2 = TOps.Subtract(TOps.Load(ref x, row + c2), k2);
                s12 = TOps.Add(s12, d2);
                s22 = TOps.Add(s22, TOps.Multiply(d2, d2));
            }

            if (chunks > 3)
            {
                TVec d3 = TOps.Subtract(TOps.Load(ref x, row + c3), k3);
                s13 = TOps.Add(s13, d3);
                s23 = TOps.Add(s23, TOps.Multiply(d3, d3));
            }
        }

        if (paired)
        {
            s10 = TOps.Add(s10, s12);
            s11 = TOps.Add(s11, s13);
            s20 = TOps.Add(s20, s22);
            s21 = TOps.Add(s21, s23);
        }

        // Stored from the last chunk to the first, so an overlapping offset keeps the same (identical) values either way.
        if (chunks > 3)
        {
            TOps.Store(k3, ref shift, c3);
            TOps.Store(s13, ref sum1, c3);
            TOps.Store(s23, ref sum2, c3);
        }

        if (chunks > 2)
        {
            TOps.Store(k2, ref shift, c2);
            TOps.Store(s12, ref sum1, c2);
            TOps.Store(s22, ref sum2, c2);
        }

        if (chunks > 1)
        {
            TOps.Store(k1, ref shift, c1);
            TOps.Store(s11, ref sum1, c1);
            TOps.Store(s21, ref sum2, c1);
        }

        TOps.Store(k0, ref shift, 0);
        TOps.Store(s10, ref sum1, 0);
        TOps.Store(s20, ref sum2, 0);
    }

    /// <summary>A compile-time switch: the JIT drops the untaken side of every test of <c>On</c>.</summary>
    internal interface ISwitch
    {
        static abstract bool On { get; }
    }

    internal readonly struct SwitchOn : ISwitch
    {
        public static bool On => true;
    }

    internal readonly struct SwitchOff : ISwitch
    {
        public static bool On => false;
    }

    /// <summary>How many vectors a narrow row takes (1 to 4), as a type, so each count gets its own specialised loop.</summary>
    private interface IChunkCount
    {
        static abstract int Value { get; }
    }

    private readonly struct OneChunk : IChunkCount
    {
        public static int Value => 1;
    }

    private readonly struct TwoChunks : IChunkCount
    {
        public static int Value => 2;
    }

    private readonly struct ThreeChunks : IChunkCount
    {
        public static int Value => 3;
    }

    private readonly struct FourChunks : IChunkCount
    {
        public static int Value => 4;
    }

    /// <summary>
    /// Prefetches the <paramref name="chunks"/> vectors of a narrow row (offsets 0, c1, c2, c3)
    /// <see cref="Prefetch.DistanceBytes"/> ahead.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void PrefetchChunks<T>(ref T x, nuint row, int chunks, nuint c1, nuint c2, nuint c3)
        where T : unmanaged
    {
        nuint ahead = row + (nuint)(Prefetch.DistanceBytes / sizeof(T));
        Prefetch.At(ref x, ahead);
        if (chunks > 1)
        {
            Prefetch.At(ref x, ahead + c1);
        }

        if (chunks > 2)
        {
            Prefetch.At(ref x, ahead + c2);
        }

        if (chunks > 3)
        {
            Prefetch.At(ref x, ahead + c3);
        }
    }

    /// <summary>
    /// One block of wide rows: per-channel accumulators in the scratch arrays (they stay in L1), each row read in order;
    /// the last <c>C mod w</c> channels are summed one by one so that no channel is counted twice.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WideBlockSums<TVec, TOps, T, TRows>(
        ref T x, TRows rows, int r0, int count, int channels, ref T shift, ref T sum1, ref T sum2, bool prefetch, bool givenShift, int phase)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TRows : IRowSelection, allows ref struct
    {
        MemoryMarshal.CreateSpan(ref sum1, channels).Clear();
        MemoryMarshal.CreateSpan(ref sum2, channels).Clear();
        if (givenShift && prefetch)
        {
            WideShiftedSums<TVec, TOps, T, TRows, SwitchOn>(ref x, rows, r0, count, channels, ref shift, ref sum1, ref sum2);
            return;
        }

        if (!givenShift)
        {
            WideBlockMean<TVec, TOps, T, TRows>(ref x, rows, r0, count, channels, ref shift, prefetch);
        }

        // The second read of a block read for its mean comes from cache: no prefetching.
        WideShiftedSums<TVec, TOps, T, TRows, SwitchOff>(ref x, rows, r0, count, channels, ref shift, ref sum1, ref sum2, phase);
    }

    /// <summary>The mean of rows <c>r0 .. r0 + count - 1</c> of a block of wide rows, in T, into <paramref name="shift"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void WideBlockMean<TVec, TOps, T, TRows>(ref T x, TRows rows, int r0, int count, int channels, ref T shift, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TRows : IRowSelection, allows ref struct
    {
        int width = TOps.Count;
        int vectorEnd = channels - (channels % width);
        MemoryMarshal.CreateSpan(ref shift, channels).Clear();

        // Four rows per accumulator update: one accumulator store per four data vectors instead of one per vector (stores
        // are the narrow resource in cache), and from memory four streams at once (see WideMeanGroup).
        int r = 0;
        for (; r <= count - 4; r += 4)
        {
            if (prefetch)
            {
                WideMeanGroup<TVec, TOps, T, TRows, SwitchOn>(ref x, rows, r0 + r, channels, vectorEnd, ref shift);
            }
            else
            {
                WideMeanGroup<TVec, TOps, T, TRows, SwitchOff>(ref x, rows, r0 + r, channels, vectorEnd, ref shift);
            }
        }

        // The last count mod 4 rows, one at a time (no software prefetch for at most three rows).
        for (; r < count; r++)
        {
            nuint row = RowOffset(rows, r0 + r, channels);
            nuint c = 0;
            for (; c < (nuint)vectorEnd; c += (nuint)width)
            {
                TOps.Store(TOps.Add(TOps.Load(ref shift, c), TOps.Load(ref x, row + c)), ref shift, c);
            }

            for (; c < (nuint)channels; c++)
            {
                Unsafe.Add(ref shift, c) += Unsafe.Add(ref x, row + c);
            }
        }

        T inverse = T.One / T.CreateTruncating(count);
        TVec inverseVector = TOps.Broadcast(inverse);
        int k = 0;
        for (; k < vectorEnd; k += width)
        {
            TOps.Store(TOps.Multiply(TOps.Load(ref shift, (nuint)k), inverseVector), ref shift, (nuint)k);
        }

        for (; k < channels; k++)
        {
            Unsafe.Add(ref shift, k) *= inverse;
        }
    }

    /// <summary>
    /// Rows <paramref name="r"/> to <paramref name="r"/> + 3 of a wide block added into the running sums in
    /// <paramref name="shift"/>, a vector of channels at a time. In cache (<typeparamref name="TPrefetch"/> off) the four
    /// rows are added up first, <c>shift + ((x0 + x1) + (x2 + x3))</c> (the last <c>C mod w</c> channels
    /// <c>shift + (((x0 + x1) + x2) + x3)</c>, as before). From memory each vector of the four rows is
    /// added in row order, <c>(((shift + x0) + x1) + x2) + x3</c>, which gives every channel the bits of adding one row
    /// at a time, and beside it the same vector of the rows <see cref="RowsAhead"/> on is prefetched: four streams at
    /// once, where one row at a time read one.
    /// </summary>
    /// <remarks>
    /// The mean of a wide stripe's first rows was the slow part of the statistics from memory: skipping it (timing only)
    /// took the statistics of float64 [3136, 2048] to 0.85-0.87 of their time. Four streams took them to 0.94-0.98 of
    /// their time (float32 0.96-0.99, one median 1.11) and the one-thread training forward to 0.96-1.00 (float64
    /// [1568, 4096] 0.96-1.00, float32 [3136, 2048] 0.94-1.03); in cache nothing moved beyond the noise. Builds
    /// alternating in one process, both slot orders, 12 rounds (thirty-eighth session, benchmarks/HISTORY.md).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WideMeanGroup<TVec, TOps, T, TRows, TPrefetch>(ref T x, TRows rows, int r, int channels, int vectorEnd, ref T shift)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TRows : IRowSelection, allows ref struct
        where TPrefetch : struct, ISwitch
    {
        int width = TOps.Count;
        nuint q0 = RowOffset(rows, r, channels);
        nuint q1 = RowOffset(rows, r + 1, channels);
        nuint q2 = RowOffset(rows, r + 2, channels);
        nuint q3 = RowOffset(rows, r + 3, channels);
        nuint p0 = 0, p1 = 0, p2 = 0, p3 = 0;
        if (TPrefetch.On)
        {
            int ahead = RowsAhead<T>(channels);
            p0 = AheadRowOffset(rows, r + ahead, channels);
            p1 = AheadRowOffset(rows, r + 1 + ahead, channels);
            p2 = AheadRowOffset(rows, r + 2 + ahead, channels);
            p3 = AheadRowOffset(rows, r + 3 + ahead, channels);
        }

        nuint c = 0;
        for (; c < (nuint)vectorEnd; c += (nuint)width)
        {
            TVec sum;
            if (TPrefetch.On)
            {
                Prefetch.At(ref x, p0 + c);
                Prefetch.At(ref x, p1 + c);
                Prefetch.At(ref x, p2 + c);
                Prefetch.At(ref x, p3 + c);
                sum = TOps.Add(TOps.Load(ref shift, c), TOps.Load(ref x, q0 + c));
                sum = TOps.Add(sum, TOps.Load(ref x, q1 + c));
                sum = TOps.Add(sum, TOps.Load(ref x, q2 + c));
                sum = TOps.Add(sum, TOps.Load(ref x, q3 + c));
            }
            else
            {
                sum = TOps.Add(
                    TOps.Load(ref shift, c),
                    TOps.Add(TOps.Add(TOps.Load(ref x, q0 + c), TOps.Load(ref x, q1 + c)), TOps.Add(TOps.Load(ref x, q2 + c), TOps.Load(ref x, q3 + c))));
            }

            TOps.Store(sum, ref shift, c);
        }

        for (; c < (nuint)channels; c++)
        {
            T x0 = Unsafe.Add(ref x, q0 + c), x1 = Unsafe.Add(ref x, q1 + c), x2 = Unsafe.Add(ref x, q2 + c), x3 = Unsafe.Add(ref x, q3 + c);
            ref T s = ref Unsafe.Add(ref shift, c);
            s = TPrefetch.On ? (((s + x0) + x1) + x2) + x3 : s + (((x0 + x1) + x2) + x3);
        }
    }

    /// <summary>
    /// The shifted pass of <see cref="WideBlockSums"/>: <c>sum1 += x - shift</c>, <c>sum2 += (x - shift)^2</c>, four rows
    /// per accumulator update. The second read of a block comes from cache; a block read once from memory
    /// (<typeparamref name="TPrefetch"/> on) prefetches, beside each vector of the four rows, the same vector of the next
    /// four rows: the whole next group is then on its way while this one is summed. A fixed distance along each row
    /// (it was 2 KiB) left every group's row starts cold: on [3136, 2048] float32 a prototype took 0.54-0.69x a copy
    /// against 0.58-0.76x, and on [6272, 1024] 0.47-0.6x against 0.8-0.9x (a plain read is 0.33x). A type argument, not a
    /// flag: a test in the loop cost 10-20% in cache, where this loop is port-bound.
    /// <para>
    /// Rows wider than <see cref="WideTileBytes"/> per accumulator array are summed a tile of channels at a time over all
    /// the block's groups of four rows, so that shift, sum1 and sum2 (12 KiB) stay in L1 beside the data in flight; the
    /// whole row's 24 KiB of float accumulators at 2048 channels did not. A prototype from memory took 0.46-0.55x a copy
    /// on [3136, 2048] with tiles of 1024 channels against 0.67-0.79x without, and 0.53-0.57x against 0.74-0.84x on
    /// [1568, 4096]. Each channel still sees its rows in the same order, so the bits do not change.
    /// </para>
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WideShiftedSums<TVec, TOps, T, TRows, TPrefetch>(
        ref T x, TRows rows, int r0, int count, int channels, ref T shift, ref T sum1, ref T sum2, int phase = 0)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TRows : IRowSelection, allows ref struct
        where TPrefetch : struct, ISwitch
    {
        int width = TOps.Count;
        int vectorEnd = channels - (channels % width);
        int groupEnd = count - (count % 4);
        int tile = TileChannels<T>();
        if (phase > 0)
        {
            // Rows sharing a phase: the groups' aligned vectors [phase, phase + C - width), and both ends of the rows
            // beside them (RowEndSums), added into sum1 and sum2 after the groups.
            int alignedEnd = phase + channels - width;
            RowEndSums<TVec> ends = default;
            for (int t0 = phase; t0 < alignedEnd; t0 += tile)
            {
                WideShiftedTile<TVec, TOps, T, TRows, TPrefetch>(
                    ref x, rows, r0, groupEnd, channels, t0, Math.Min(alignedEnd, t0 + tile), ref shift, ref sum1, ref sum2, phase, ref ends);
            }

            ends.AddTo<TOps, T>(phase, channels, ref sum1, ref sum2);
        }
        else
        {
            RowEndSums<TVec> none = default;
            for (int t0 = 0; t0 < vectorEnd; t0 += tile)
            {
                WideShiftedTile<TVec, TOps, T, TRows, TPrefetch>(
                    ref x, rows, r0, groupEnd, channels, t0, Math.Min(vectorEnd, t0 + tile), ref shift, ref sum1, ref sum2, 0, ref none);
            }
        }

        for (int r = groupEnd; r < count; r++)
        {
            nuint row = RowOffset(rows, r0 + r, channels);
            nuint c = 0;
            for (; c < (nuint)vectorEnd; c += (nuint)width)
            {
                if (TPrefetch.On)
                {
                    Prefetch.Ahead(ref x, row + c);
                }

                TVec d = TOps.Subtract(TOps.Load(ref x, row + c), TOps.Load(ref shift, c));
                TOps.Store(TOps.Add(TOps.Load(ref sum1, c), d), ref sum1, c);
                TOps.Store(TOps.Add(TOps.Load(ref sum2, c), TOps.Multiply(d, d)), ref sum2, c);
            }

            for (; c < (nuint)channels; c++)
            {
                T d = Unsafe.Add(ref x, row + c) - Unsafe.Add(ref shift, c);
                Unsafe.Add(ref sum1, c) += d;
                Unsafe.Add(ref sum2, c) += d * d;
            }
        }
    }

    /// <summary>
    /// The four-row groups of <see cref="WideShiftedSums"/> (rows <c>r0 .. r0 + groupEnd - 1</c>) on the whole vectors of
    /// channels <c>[c0, c1)</c>; the last tile (<paramref name="c1"/> at the end of the whole vectors) also takes the
    /// last <c>C mod w</c> channels one by one, so that no channel is counted twice. Rows walked from a
    /// <paramref name="phase"/> above zero also add each group's row starts (in the tile from the phase) and row ends (in
    /// the tile to <c>phase + C - w</c>) into <paramref name="ends"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WideShiftedTile<TVec, TOps, T, TRows, TPrefetch>(
        ref T x, TRows rows, int r0, int groupEnd, int channels, int c0, int c1, ref T shift, ref T sum1, ref T sum2, int phase,
        ref RowEndSums<TVec> ends)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TRows : IRowSelection, allows ref struct
        where TPrefetch : struct, ISwitch
    {
        int width = TOps.Count;
        int ahead = RowsAhead<T>(channels);
        int spacing = GroupSpacing<T>(channels, groupEnd);
        bool starts = phase > 0 && c0 == phase;
        bool endsOfRows = phase > 0 && c1 == phase + channels - width;
        nuint last = (nuint)(channels - width);
        for (int g = 0; g < groupEnd; g += 4)
        {
            int r = GroupFirstRow(r0, g, spacing);
            GroupRowOffsets(rows, r, spacing, channels, out nuint q0, out nuint q1, out nuint q2, out nuint q3);
            nuint p0 = 0, p1 = 0, p2 = 0, p3 = 0;
            if (TPrefetch.On)
            {
                p0 = AheadRowOffset(rows, r + ahead, channels);
                p1 = AheadRowOffset(rows, r + spacing + ahead, channels);
                p2 = AheadRowOffset(rows, r + (2 * spacing) + ahead, channels);
                p3 = AheadRowOffset(rows, r + (3 * spacing) + ahead, channels);
            }

            for (nuint c = (nuint)c0; c < (nuint)c1; c += (nuint)width)
            {
                if (TPrefetch.On)
                {
                    Prefetch.At(ref x, p0 + c);
                    Prefetch.At(ref x, p1 + c);
                    Prefetch.At(ref x, p2 + c);
                    Prefetch.At(ref x, p3 + c);
                }

                TVec sum = GroupSums<TVec, TOps, T>(ref x, q0, q1, q2, q3, c, TOps.Load(ref shift, c), out TVec squares);
                TOps.Store(TOps.Add(TOps.Load(ref sum1, c), sum), ref sum1, c);
                TOps.Store(TOps.Add(TOps.Load(ref sum2, c), squares), ref sum2, c);
            }

            if (starts)
            {
                TVec sum = GroupSums<TVec, TOps, T>(ref x, q0, q1, q2, q3, 0, TOps.Load(ref shift, 0), out TVec squares);
                ends.Start1 = TOps.Add(ends.Start1, sum);
                ends.Start2 = TOps.Add(ends.Start2, squares);
            }

            if (endsOfRows)
            {
                TVec sum = GroupSums<TVec, TOps, T>(ref x, q0, q1, q2, q3, last, TOps.Load(ref shift, last), out TVec squares);
                ends.End1 = TOps.Add(ends.End1, sum);
                ends.End2 = TOps.Add(ends.End2, squares);
            }

            for (nuint c = (nuint)c1; c1 == channels - (channels % width) && c < (nuint)channels; c++)
            {
                T kc = Unsafe.Add(ref shift, c);
                T d0 = Unsafe.Add(ref x, q0 + c) - kc;
                T d1 = Unsafe.Add(ref x, q1 + c) - kc;
                T d2 = Unsafe.Add(ref x, q2 + c) - kc;
                T d3 = Unsafe.Add(ref x, q3 + c) - kc;
                Unsafe.Add(ref sum1, c) += (d0 + d1) + (d2 + d3);
                Unsafe.Add(ref sum2, c) += ((d0 * d0) + (d1 * d1)) + ((d2 * d2) + (d3 * d3));
            }
        }
    }

    /// <summary>
    /// One vector of channels of a group of four rows (at offsets <paramref name="q0"/> to <paramref name="q3"/>) around
    /// <paramref name="shift"/>: returns <c>(d0 + d1) + (d2 + d3)</c> and gives <c>(d0^2 + d1^2) + (d2^2 + d3^2)</c>, with
    /// <c>di = x[qi + c] - shift</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TVec GroupSums<TVec, TOps, T>(ref T x, nuint q0, nuint q1, nuint q2, nuint q3, nuint c, TVec shift, out TVec squares)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        TVec d0 = TOps.Subtract(TOps.Load(ref x, q0 + c), shift);
        TVec d1 = TOps.Subtract(TOps.Load(ref x, q1 + c), shift);
        TVec d2 = TOps.Subtract(TOps.Load(ref x, q2 + c), shift);
        TVec d3 = TOps.Subtract(TOps.Load(ref x, q3 + c), shift);
        squares = TOps.Add(
            TOps.Add(TOps.Multiply(d0, d0), TOps.Multiply(d1, d1)),
            TOps.Add(TOps.Multiply(d2, d2), TOps.Multiply(d3, d3)));
        return TOps.Add(TOps.Add(d0, d1), TOps.Add(d2, d3));
    }

    /// <summary>
    /// The ends of the four-row groups of a phased <see cref="WideShiftedSums"/>, summed beside the groups' aligned vectors
    /// (<see cref="WideShiftedTile"/>): the vector at each row's start, whose lanes below the phase are channels
    /// <c>[0, phase)</c>, and the vector at each row's end, whose lanes from the phase on are channels
    /// <c>[C - w + phase, C)</c> (C is a whole number of vectors). The other lanes overlap aligned vectors and are dropped
    /// by <see cref="AddTo"/>. Each kept lane starts at zero, as a cleared sum does, and gets each group's sum in group
    /// order, as the aligned channels do: the same operations, in the same order, as the walk from the row start, so the
    /// same bits.
    /// </summary>
    /// <remarks>
    /// Managed arrays start 16 to 40 bytes past a line, so a walk from the row start splits every 512-bit load across two
    /// lines. A prototype of the groups' loop on float32 [256,1024] in cache (Intel Xeon, thirty-second session, rows 24
    /// bytes past a line, fastest of 16 rounds against a copy): 0.556-0.586x from the row starts, 0.455-0.489x in aligned
    /// vectors with the ends (with every buffer on a line: 0.44-0.47x).
    /// <para>
    /// Until the forty-ninth session the ends were a pass of their own after the groups. The line where one row ends and
    /// the next starts is read by no aligned vector, so that pass read it from wherever the groups' pass had left it,
    /// 4 KiB apart and out of the prefetchers' reach: on the Zen 4 machine, float32 [256,1024], it took 0.9 us in some
    /// processes and 3.7 us in others (a third of the statistics' time above a read of x), by the physical pages each
    /// process got. Beside the groups, that line comes in with its rows.
    /// </para>
    /// </remarks>
    private struct RowEndSums<TVec>
        where TVec : struct
    {
        /// <summary>The sums of <c>x - shift</c> and <c>(x - shift)^2</c> of the row starts' vectors.</summary>
        public TVec Start1, Start2;

        /// <summary>The sums of <c>x - shift</c> and <c>(x - shift)^2</c> of the row ends' vectors.</summary>
        public TVec End1, End2;

        /// <summary>The kept lanes added into <paramref name="sum1"/> and <paramref name="sum2"/>, whose ends they replace.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void AddTo<TOps, T>(int phase, int channels, ref T sum1, ref T sum2)
            where TOps : IVectorOps<TVec, T>
            where T : unmanaged, IBinaryFloatingPointIeee754<T>
        {
            TVec head = TOps.LanesBelow(phase);
            nuint last = (nuint)(channels - TOps.Count);
            TOps.Store(TOps.Select(head, Start1, TOps.Load(ref sum1, 0)), ref sum1, 0);
            TOps.Store(TOps.Select(head, Start2, TOps.Load(ref sum2, 0)), ref sum2, 0);
            TOps.Store(TOps.Select(head, TOps.Load(ref sum1, last), End1), ref sum1, last);
            TOps.Store(TOps.Select(head, TOps.Load(ref sum2, last), End2), ref sum2, last);
        }
    }

    /// <summary>
    /// How many rows apart the wide-row statistics' four-row groups (<see cref="WideShiftedTile"/>) take their rows: a row of at most <see cref="WideTileBytes"/> (read whole by one tile) groups with the rows a quarter
    /// of the block's <paramref name="groupRows"/> on, so that the pass reads four streams at once; wider rows, read a
    /// tile at a time, group with the next three.
    /// </summary>
    /// <remarks>
    /// From memory one core here reads several streams at once faster than one: a plain read of 51 MB took 0.70-0.81x a
    /// copy in one stream and 0.48-0.58x in four (Intel Xeon, thirty-sixth session; software prefetch at 4-32 KiB or into
    /// L2 did not help one stream). The statistics of double [32,56,56,64] (rows of 512 bytes) took 0.64-0.77 of their
    /// time with the quarters, in cache they did not move ([256,1024], [1024,256]), and rows of 8-32 KiB, whose tiles
    /// touch each page once, took 1.02-1.06 (see HISTORY.md).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe int GroupSpacing<T>(int channels, int groupRows)
        where T : unmanaged => channels * sizeof(T) <= WideTileBytes ? groupRows / 4 : 1;

    /// <summary>The offsets of the four rows of a group: row <paramref name="r"/> and the three <paramref name="spacing"/> rows apart after it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void GroupRowOffsets<TRows>(TRows rows, int r, int spacing, int channels, out nuint q0, out nuint q1, out nuint q2, out nuint q3)
        where TRows : IRowSelection, allows ref struct
    {
        q0 = RowOffset(rows, r, channels);
        q1 = RowOffset(rows, r + spacing, channels);
        q2 = RowOffset(rows, r + (2 * spacing), channels);
        q3 = RowOffset(rows, r + (3 * spacing), channels);
    }

    /// <summary>The first row of the group starting at the block's row <paramref name="g"/> (a multiple of 4) with the rows <paramref name="spacing"/> apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int GroupFirstRow(int r0, int g, int spacing) => spacing == 1 ? r0 + g : r0 + (g / 4);

    /// <summary>
    /// How many rows ahead the wide-row statistics loops prefetch: the next group of four, and at least
    /// <see cref="RowsAheadBytes"/> on.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe int RowsAhead<T>(int channels)
        where T : unmanaged => Math.Max(4, (RowsAheadBytes + (channels * sizeof(T)) - 1) / (channels * sizeof(T)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static nuint RowOffset<TRows>(TRows rows, int index, int channels)
        where TRows : IRowSelection, allows ref struct =>
        TRows.IsContiguous ? (nuint)((nint)index * channels) : (nuint)(rows.Row(index) * channels);

    /// <summary>
    /// The offset of row <paramref name="index"/> for a prefetch: contiguous rows run on past the selection (into the next
    /// stripe, or past the buffer, which a prefetch may touch), listed rows stop at the last one (a line already in cache).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static nuint AheadRowOffset<TRows>(TRows rows, int index, int channels)
        where TRows : IRowSelection, allows ref struct =>
        TRows.IsContiguous ? (nuint)((nint)index * channels) : (nuint)(rows.Row(Math.Min(index, rows.Count - 1)) * channels);

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

    /// <summary>
    /// Channel not last, <c>[outer, C, inner]</c>, channels [c0, c1): vectors run along each contiguous run of a channel;
    /// each channel's runs are merged in outer order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MomentsChannelsFirst<TVec, TOps, T>(ref T x, ChannelLayout layout, int c0, int c1, Span<double> mean, Span<double> m2, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        // In memory order (each channel's blocks are still merged in outer order, so the bits do not depend on it): the
        // next run is the next memory, which the prefetcher (and the software prefetch) has already requested. From
        // memory, channel c goes beside channels c + q, c + 2q and c + 3q, q a quarter of the channels
        // (ChannelQuadMoments): four streams read faster than one or two. The channels left over, fewer than four, go
        // in a pair (ChannelPairMoments) and alone. Runs shorter than QuadRunBytes go in pairs only.
        int inner = layout.Inner;
        int quarter = prefetch && (long)inner * Unsafe.SizeOf<T>() >= QuadRunBytes ? (c1 - c0) / 4 : 0;
        int rest = c0 + (4 * quarter);
        int half = prefetch ? (c1 - rest) / 2 : 0;
        int paired = rest + half;
        for (int o = 0; o < layout.Outer; o++)
        {
            for (int c = c0; c < c0 + quarter; c++)
            {
                ChannelQuadMoments<TVec, TOps, T>(ref x, layout, o, c, quarter, mean, m2);
            }

            for (int c = rest; c < paired; c++)
            {
                ChannelPairMoments<TVec, TOps, T>(ref x, layout, o, c, c + (c1 - paired), mean, m2);
            }

            for (int c = paired; c < c1 - half; c++)
            {
                ref T run = ref Unsafe.Add(ref x, ((nint)o * layout.Channels + c) * inner);
                for (int j0 = 0; j0 < inner; j0 += BlockElements)
                {
                    int count = Math.Min(BlockElements, inner - j0);
                    ref T block = ref Unsafe.Add(ref run, j0);

                    // After the channel's first block, one read around the running mean, kept if it was close enough
                    // (see ShiftWasClose); otherwise, and for the first block, the block's own mean and a second read.
                    T k = T.CreateTruncating(mean[c]);
                    double s1 = 0, s2 = 0;
                    bool shifted = false;
                    if (o != 0 || j0 != 0)
                    {
                        s1 = ShiftedSums<TVec, TOps, T>(ref block, count, k, prefetch, out s2);
                        shifted = ShiftWasClose(s1, s2, count);
                    }

                    if (!shifted)
                    {
                        k = T.CreateTruncating(Sum<TVec, TOps, T>(ref block, count, prefetch) / count);
                        s1 = ShiftedSums<TVec, TOps, T>(ref block, count, k, prefetch: false, out s2);
                    }

                    MergeBlock(ref mean[c], ref m2[c], new BlockWeights(((double)o * inner) + j0, count), double.CreateTruncating(k), s1, s2);
                }
            }
        }
    }

    /// <summary>
    /// One block of a channels-first run after its read around the running mean <paramref name="shift"/>
    /// (<paramref name="wasRead"/>; a channel's first block is not): when that read was not close enough
    /// (<see cref="ShiftWasClose(double, double, int)"/>), or there was none, the block's own T-rounded mean and a second
    /// read around it from cache; then the block merged into the channel's running mean and M2.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MergeRunBlock<TVec, TOps, T>(
        ref T block, int count, T shift, bool wasRead, double sum1, double sum2, ref double mean, ref double m2, in BlockWeights weights, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (!wasRead || !ShiftWasClose(sum1, sum2, count))
        {
            shift = T.CreateTruncating(Sum<TVec, TOps, T>(ref block, count, prefetch) / count);
            sum1 = ShiftedSums<TVec, TOps, T>(ref block, count, shift, prefetch: false, out sum2);
        }

        MergeBlock(ref mean, ref m2, weights, double.CreateTruncating(shift), sum1, sum2);
    }

    /// <summary>The shortest channels-first run, in bytes, that the statistics read four at a time (<see cref="ChannelQuadMoments"/>).</summary>
    private const int QuadRunBytes = 8192;

    /// <summary>
    /// The runs of channels <paramref name="c"/>, <c>c + q</c>, <c>c + 2q</c> and <c>c + 3q</c> at outer index
    /// <paramref name="o"/> from memory, block by block side by side, as <see cref="ChannelPairMoments"/> takes two: each
    /// run has its own <see cref="ShiftedAccumulators{TVec, TOps, T}"/>, so each block gets exactly what
    /// <see cref="MomentsChannelsFirst{TVec, TOps, T}"/> gives it alone, and the same bits.
    /// </summary>
    /// <remarks>
    /// Against the pairs, on runs of 12.5-25 KiB (builds alternating in one process, both slot orders, 12 rounds, two
    /// builds of it; thirty-eighth session, benchmarks/HISTORY.md): the statistics of float64 [32, 64, 56, 56] took
    /// 0.85-0.95 of their time (float32 0.88-1.11), the training forward 0.89-1.01 (float32 0.87-1.05, float64 on two
    /// threads 0.86-1.02). On shorter
    /// runs four lost: [16, 256, 28, 28], runs of 3 KiB in float32 and 6 KiB in float64, took 1.14-1.30 and 0.98-1.22
    /// (one slot order, 16 rounds), hence <see cref="QuadRunBytes"/>.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ChannelQuadMoments<TVec, TOps, T>(ref T x, ChannelLayout layout, int o, int c, int q, Span<double> mean, Span<double> m2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int inner = layout.Inner;
        int width = TOps.Count;
        int c2 = c + q, c3 = c + (2 * q), c4 = c + (3 * q);
        ref T run1 = ref Unsafe.Add(ref x, ((nint)o * layout.Channels + c) * inner);
        ref T run2 = ref Unsafe.Add(ref x, ((nint)o * layout.Channels + c2) * inner);
        ref T run3 = ref Unsafe.Add(ref x, ((nint)o * layout.Channels + c3) * inner);
        ref T run4 = ref Unsafe.Add(ref x, ((nint)o * layout.Channels + c4) * inner);
        for (int j0 = 0; j0 < inner; j0 += BlockElements)
        {
            int count = Math.Min(BlockElements, inner - j0);
            ref T block1 = ref Unsafe.Add(ref run1, j0);
            ref T block2 = ref Unsafe.Add(ref run2, j0);
            ref T block3 = ref Unsafe.Add(ref run3, j0);
            ref T block4 = ref Unsafe.Add(ref run4, j0);
            T k1 = T.CreateTruncating(mean[c]), k2 = T.CreateTruncating(mean[c2]), k3 = T.CreateTruncating(mean[c3]), k4 = T.CreateTruncating(mean[c4]);
            double a1 = 0, a2 = 0, b1 = 0, b2 = 0, d1 = 0, d2 = 0, e1 = 0, e2 = 0;
            bool read = o != 0 || j0 != 0;
            if (read)
            {
                var acc1 = new ShiftedAccumulators<TVec, TOps, T>(k1);
                var acc2 = new ShiftedAccumulators<TVec, TOps, T>(k2);
                var acc3 = new ShiftedAccumulators<TVec, TOps, T>(k3);
                var acc4 = new ShiftedAccumulators<TVec, TOps, T>(k4);
                int i = 0;
                for (; i <= count - (2 * width); i += 2 * width)
                {
                    Prefetch.Ahead(ref block1, (nuint)i);
                    Prefetch.Ahead(ref block2, (nuint)i);
                    Prefetch.Ahead(ref block3, (nuint)i);
                    Prefetch.Ahead(ref block4, (nuint)i);
                    acc1.AddTwo(ref block1, (nuint)i);
                    acc2.AddTwo(ref block2, (nuint)i);
                    acc3.AddTwo(ref block3, (nuint)i);
                    acc4.AddTwo(ref block4, (nuint)i);
                }

                for (; i <= count - width; i += width)
                {
                    acc1.AddOne(ref block1, (nuint)i);
                    acc2.AddOne(ref block2, (nuint)i);
                    acc3.AddOne(ref block3, (nuint)i);
                    acc4.AddOne(ref block4, (nuint)i);
                }

                a1 = acc1.Finish(ref block1, i, count, out a2);
                b1 = acc2.Finish(ref block2, i, count, out b2);
                d1 = acc3.Finish(ref block3, i, count, out d2);
                e1 = acc4.Finish(ref block4, i, count, out e2);
            }

            var weights = new BlockWeights(((double)o * inner) + j0, count);
            MergeRunBlock<TVec, TOps, T>(ref block1, count, k1, read, a1, a2, ref mean[c], ref m2[c], weights, prefetch: true);
            MergeRunBlock<TVec, TOps, T>(ref block2, count, k2, read, b1, b2, ref mean[c2], ref m2[c2], weights, prefetch: true);
            MergeRunBlock<TVec, TOps, T>(ref block3, count, k3, read, d1, d2, ref mean[c3], ref m2[c3], weights, prefetch: true);
            MergeRunBlock<TVec, TOps, T>(ref block4, count, k4, read, e1, e2, ref mean[c4], ref m2[c4], weights, prefetch: true);
        }
    }

    /// <summary>
    /// The runs of channels <paramref name="c"/> and <paramref name="e"/> at outer index <paramref name="o"/> from memory,
    /// block by block side by side: each block gets exactly what <see cref="MomentsChannelsFirst{TVec, TOps, T}"/> gives it
    /// alone (the shifted sums of <see cref="ShiftedSumsPair"/> are <see cref="ShiftedSums"/>' for each run), so the bits
    /// are the same. Only the reads of both runs around the running means share a loop; a first block, or one whose shift
    /// was too far, is read again on its own from cache.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ChannelPairMoments<TVec, TOps, T>(ref T x, ChannelLayout layout, int o, int c, int e, Span<double> mean, Span<double> m2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int inner = layout.Inner;
        ref T runC = ref Unsafe.Add(ref x, ((nint)o * layout.Channels + c) * inner);
        ref T runE = ref Unsafe.Add(ref x, ((nint)o * layout.Channels + e) * inner);
        for (int j0 = 0; j0 < inner; j0 += BlockElements)
        {
            int count = Math.Min(BlockElements, inner - j0);
            ref T blockC = ref Unsafe.Add(ref runC, j0);
            ref T blockE = ref Unsafe.Add(ref runE, j0);
            T kc = T.CreateTruncating(mean[c]), ke = T.CreateTruncating(mean[e]);
            double c1 = 0, c2 = 0, e1 = 0, e2 = 0;
            bool shiftedC = false, shiftedE = false;
            if (o != 0 || j0 != 0)
            {
                ShiftedSumsPair<TVec, TOps, T>(ref blockC, ref blockE, count, kc, ke, out c1, out c2, out e1, out e2);
                shiftedC = ShiftWasClose(c1, c2, count);
                shiftedE = ShiftWasClose(e1, e2, count);
            }

            if (!shiftedC)
            {
                kc = T.CreateTruncating(Sum<TVec, TOps, T>(ref blockC, count, prefetch: true) / count);
                c1 = ShiftedSums<TVec, TOps, T>(ref blockC, count, kc, prefetch: false, out c2);
            }

            if (!shiftedE)
            {
                ke = T.CreateTruncating(Sum<TVec, TOps, T>(ref blockE, count, prefetch: true) / count);
                e1 = ShiftedSums<TVec, TOps, T>(ref blockE, count, ke, prefetch: false, out e2);
            }

            var weights = new BlockWeights(((double)o * inner) + j0, count);
            MergeBlock(ref mean[c], ref m2[c], weights, double.CreateTruncating(kc), c1, c2);
            MergeBlock(ref mean[e], ref m2[e], weights, double.CreateTruncating(ke), e1, e2);
        }
    }

    /// <summary>
    /// <see cref="ShiftedSums"/> over two runs of <paramref name="count"/> elements in one loop, each run with its own
    /// <see cref="ShiftedAccumulators{TVec, TOps, T}"/> (so each gets exactly the operations it gets alone, and the same
    /// bits), both prefetched.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ShiftedSumsPair<TVec, TOps, T>(
        ref T x, ref T z, int count, T shiftX, T shiftZ, out double x1, out double x2, out double z1, out double z2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        var ax = new ShiftedAccumulators<TVec, TOps, T>(shiftX);
        var az = new ShiftedAccumulators<TVec, TOps, T>(shiftZ);
        int i = 0;
        for (; i <= count - (2 * width); i += 2 * width)
        {
            Prefetch.Ahead(ref x, (nuint)i);
            Prefetch.Ahead(ref z, (nuint)i);
            ax.AddTwo(ref x, (nuint)i);
            az.AddTwo(ref z, (nuint)i);
        }

        for (; i <= count - width; i += width)
        {
            ax.AddOne(ref x, (nuint)i);
            az.AddOne(ref z, (nuint)i);
        }

        x1 = ax.Finish(ref x, i, count, out x2);
        z1 = az.Finish(ref z, i, count, out z2);
    }

    /// <summary><c>sum(x)</c> over a contiguous run, four independent accumulators (add latency, not throughput, was the limit).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double Sum<TVec, TOps, T>(ref T x, int count, bool prefetch = false)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        TVec a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero;
        int i = 0;
        for (; i <= count - (4 * width); i += 4 * width)
        {
            if (prefetch)
            {
                Prefetch.Ahead(ref x, (nuint)i);
                Prefetch.Ahead(ref x, (nuint)(i + (2 * width)));
            }

            a0 = TOps.Add(a0, TOps.Load(ref x, (nuint)i));
            a1 = TOps.Add(a1, TOps.Load(ref x, (nuint)(i + width)));
            a2 = TOps.Add(a2, TOps.Load(ref x, (nuint)(i + (2 * width))));
            a3 = TOps.Add(a3, TOps.Load(ref x, (nuint)(i + (3 * width))));
        }

        for (; i <= count - width; i += width)
        {
            a0 = TOps.Add(a0, TOps.Load(ref x, (nuint)i));
        }

        double sum = TOps.SumToDouble(TOps.Add(TOps.Add(a0, a1), TOps.Add(a2, a3)));
        for (; i < count; i++)
        {
            sum += double.CreateTruncating(Unsafe.Add(ref x, i));
        }

        return sum;
    }

    /// <summary><c>sum(x - shift)</c> and <c>sum((x - shift)^2)</c> over a contiguous run, with two pairs of accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double ShiftedSums<TVec, TOps, T>(ref T x, int count, T shift, bool prefetch, out double sum2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        var sums = new ShiftedAccumulators<TVec, TOps, T>(shift);
        int i = 0;
        for (; i <= count - (2 * width); i += 2 * width)
        {
            if (prefetch)
            {
                Prefetch.Ahead(ref x, (nuint)i);
            }

            sums.AddTwo(ref x, (nuint)i);
        }

        for (; i <= count - width; i += width)
        {
            sums.AddOne(ref x, (nuint)i);
        }

        return sums.Finish(ref x, i, count, out sum2);
    }

    /// <summary>
    /// The accumulators of <see cref="ShiftedSums"/> over one run: two pairs, <c>sum(x - shift)</c> and
    /// <c>sum((x - shift)^2)</c> for the even and the odd vector of each two, so the add chains do not bound the loop.
    /// </summary>
    /// <remarks>
    /// Constructors written out, not a primary constructor: its field initializers compiled to a constructor the JIT did
    /// not inline, a call per run (4-5% of the channels-first statistics' samples on [32, 512, 7, 7]).
    /// </remarks>
    private struct ShiftedAccumulators<TVec, TOps, T>
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        private readonly T _shift;
        private readonly TVec _k;
        private TVec _s1a, _s2a, _s1b, _s2b;

        /// <summary>Accumulators around <paramref name="shift"/>, all zero.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public ShiftedAccumulators(T shift)
        {
            _shift = shift;
            _k = TOps.Broadcast(shift);
            _s1a = _s2a = _s1b = _s2b = TOps.Zero;
        }

        /// <summary>Accumulators around <paramref name="shift"/> that resume from the four vectors saved at <paramref name="state"/> (<see cref="Save"/>).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public ShiftedAccumulators(T shift, ref T state)
        {
            _shift = shift;
            _k = TOps.Broadcast(shift);
            nuint w = (nuint)TOps.Count;
            _s1a = TOps.Load(ref state, 0);
            _s1b = TOps.Load(ref state, w);
            _s2a = TOps.Load(ref state, 2 * w);
            _s2b = TOps.Load(ref state, 3 * w);
        }

        /// <summary>The shift the sums are taken around.</summary>
        public readonly T Shift => _shift;

        /// <summary>Saves the four accumulators at <paramref name="state"/>, for a later <see cref="ShiftedAccumulators{TVec, TOps, T}(T, ref T)"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Save(ref T state)
        {
            nuint w = (nuint)TOps.Count;
            TOps.Store(_s1a, ref state, 0);
            TOps.Store(_s1b, ref state, w);
            TOps.Store(_s2a, ref state, 2 * w);
            TOps.Store(_s2b, ref state, 3 * w);
        }

        /// <summary>Both sums of the vectors alone in double, the pairs added and reduced (the first lines of <see cref="Finish"/>).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly double Reduce(out double sum2)
        {
            sum2 = TOps.SumToDouble(TOps.Add(_s2a, _s2b));
            return TOps.SumToDouble(TOps.Add(_s1a, _s1b));
        }

        /// <summary>Adds the two vectors at element <paramref name="i"/> of <paramref name="x"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void AddTwo(ref T x, nuint i)
        {
            TVec da = TOps.Subtract(TOps.Load(ref x, i), _k);
            TVec db = TOps.Subtract(TOps.Load(ref x, i + (nuint)TOps.Count), _k);
            _s1a = TOps.Add(_s1a, da);
            _s1b = TOps.Add(_s1b, db);
            _s2a = TOps.Add(_s2a, TOps.Multiply(da, da));
            _s2b = TOps.Add(_s2b, TOps.Multiply(db, db));
        }

        /// <summary>Adds the vector at element <paramref name="i"/> (to the even pair).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void AddOne(ref T x, nuint i)
        {
            TVec d = TOps.Subtract(TOps.Load(ref x, i), _k);
            _s1a = TOps.Add(_s1a, d);
            _s2a = TOps.Add(_s2a, TOps.Multiply(d, d));
        }

        /// <summary>
        /// Adds the vector at element <paramref name="i"/> (to the even pair) without its lanes in <paramref name="drop"/>
        /// (from <see cref="IVectorOps{TVec, T}.LanesBelow"/>): a run's last elements, in the vector that ends with it.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void AddLast(ref T x, nuint i, TVec drop)
        {
            TVec d = TOps.Select(drop, TOps.Zero, TOps.Subtract(TOps.Load(ref x, i), _k));
            _s1a = TOps.Add(_s1a, d);
            _s2a = TOps.Add(_s2a, TOps.Multiply(d, d));
        }

        /// <summary>Both sums in double: the pairs added and reduced, then elements <paramref name="i"/> to <paramref name="count"/> - 1 added one by one.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly double Finish(ref T x, int i, int count, out double sum2)
        {
            double sum1 = TOps.SumToDouble(TOps.Add(_s1a, _s1b));
            sum2 = TOps.SumToDouble(TOps.Add(_s2a, _s2b));
            double kd = double.CreateTruncating(_shift);
            for (; i < count; i++)
            {
                double d = double.CreateTruncating(Unsafe.Add(ref x, i)) - kd;
                sum1 += d;
                sum2 += d * d;
            }

            return sum1;
        }
    }

    /// <summary>
    /// The weights of Chan et al.'s pairwise update for merging a block of <c>countB</c> elements into a running result
    /// over <c>countA</c>: the same for every channel of a block, so computed once (no division per channel).
    /// </summary>
    private readonly struct BlockWeights
    {
        public BlockWeights(double countA, double countB)
        {
            double n = countA + countB;
            InverseCount = 1.0 / countB;
            Weight = countB / n;
            CrossWeight = countA * countB / n;
        }

        public double InverseCount { get; }

        public double Weight { get; }

        public double CrossWeight { get; }
    }

    /// <summary>
    /// Merges a block described by its shift and shifted sums into a running (mean, M2):
    /// block mean = shift + S1/m, block M2 = S2 - S1^2/m (never below 0), then
    /// <c>mean += delta * m/n</c>, <c>M2 += M2_block + delta^2 * countA * m / n</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MergeBlock(ref double mean, ref double m2, in BlockWeights w, double shift, double sum1, double sum2)
    {
        // delta = block mean - running mean, as (shift - mean) + S1/m: the shift is the running mean or close to it, so
        // the first difference is exact and delta carries no rounding of the means' magnitude.
        double delta = (shift - mean) + (sum1 * w.InverseCount);
        double blockM2 = Math.Max(0.0, sum2 - (sum1 * sum1 * w.InverseCount));
        mean += delta * w.Weight;
        m2 += blockM2 + (delta * delta * w.CrossWeight);
    }
}
