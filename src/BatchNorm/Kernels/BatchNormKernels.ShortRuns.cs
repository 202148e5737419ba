using System;
using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace BatchNorm.Kernels;

internal static partial class BatchNormKernels
{
    /// <summary>
    /// Channels-first runs shorter than this many bytes (<c>inner * sizeof(T)</c>; 7x7 to 32x32 feature maps) are not
    /// summed run by run but a block of outer indices at a time (<see cref="ShortRunMoments{T}"/>): per run, two
    /// reductions of vectors to double and a merge cost more than summing a few vectors of it.
    /// </summary>
    internal const int ShortRunBytes = 8192;

    /// <summary>
    /// Whether the channels-first statistics of <paramref name="layout"/> go through <see cref="ShortRunMoments{T}"/>:
    /// channel not last, runs shorter than <see cref="ShortRunBytes"/>, more than one outer index. Shape only.
    /// </summary>
    internal static unsafe bool HasShortRuns<T>(ChannelLayout layout)
        where T : unmanaged => !layout.IsChannelsLast && layout.Outer > 1 && (long)layout.Inner * sizeof(T) < ShortRunBytes;

    /// <summary>
    /// How many outer indices one block of <see cref="ShortRunMoments{T}"/> takes: as many runs as make up to
    /// <see cref="BlockElements"/> elements of a channel, at least one, at most all. Shape only, so the same for any thread
    /// count and vector width.
    /// </summary>
    internal static int ShortRunBlockRuns(ChannelLayout layout) => Math.Clamp(BlockElements / layout.Inner, 1, layout.Outer);

    /// <summary>
    /// Runs of at most this many bytes are summed channel by channel in cache (<see cref="ShortRunMomentsByChannel"/>);
    /// longer ones, and any from memory, in memory order (<see cref="ShortRunMomentsInMemoryOrder"/>). The two give the
    /// same bits. Float32 training forward, one thread, the two alternating in one process (forty-fourth session, Zen 4,
    /// fastest of 15 rounds against a copy, memory order then by channel): [32, 512, 7, 7] 3.36-3.50x / 2.65-2.76x
    /// (double 2.07x / 1.91x); [32, 256, 14, 14] 1.68-1.72x / 1.69-1.74x (double 2.05x / 2.53x); [32, 128, 28, 28]
    /// 1.72x / 1.98x; from memory [128, 256, 14, 14] 2.20-2.47x / 2.53-2.93x.
    /// </summary>
    internal const int ShortRunByChannelBytes = 512;

    /// <summary>
    /// Mean and M2 of channels [c0, c1) of a channels-first layout with short runs (<see cref="HasShortRuns{T}"/>), on the
    /// calling thread; <paramref name="byChannel"/> chooses the walk (by default as <see cref="ShortRunByChannelBytes"/>
    /// says; the tests run both).
    /// </summary>
    /// <remarks>
    /// The block of channel c is its runs at outer indices <c>[o0, o0 + B)</c>, B = <see cref="ShortRunBlockRuns"/>. The
    /// block is summed around a shift k as the long runs' blocks are, <c>S1 = sum(x - k)</c> and <c>S2 = sum((x - k)^2)</c>:
    /// each run's whole vectors into <see cref="ShiftedAccumulators{TVec, TOps, T}"/> (two at a time, an odd one to the
    /// even pair), then its last <c>inner mod w</c> elements in the vector that ends the run, masked (one by one in double
    /// when the run is shorter than a vector). At the end of the block the sums are reduced once and merged once
    /// (Chan et al.), where the run-by-run path reduced and merged every run: 49 elements a run on 7x7 maps.
    /// <para>
    /// The shift of a channel's first block is the T-rounded mean of its first run (read twice, the second time from L1);
    /// later blocks take the running mean. A block whose shift fails <see cref="ShiftWasClose(double, double, int)"/> is
    /// read again around its own mean, with the same operations in the same order. Each channel's bits depend only on its
    /// own runs, the vector width and the shape: not on the walk, the other channels, the thread count or the channel
    /// range.
    /// </para>
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void ShortRunMoments<T>(
        ReadOnlySpan<T> x, ChannelLayout layout, int c0, int c1, Span<double> mean, Span<double> m2, VectorWidth width, bool prefetch, bool? byChannel = null)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        mean[c0..c1].Clear();
        m2[c0..c1].Clear();
        if (byChannel ?? (!prefetch && layout.Inner * sizeof(T) <= ShortRunByChannelBytes))
        {
            ref T src = ref MemoryMarshal.GetReference(x);
            switch (width)
            {
                case VectorWidth.Vector512:
                    ShortRunMomentsByChannel<Vector512<T>, Vector512Ops<T>, T>(ref src, layout, c0, c1, mean, m2);
                    break;
                case VectorWidth.Vector256:
                    ShortRunMomentsByChannel<Vector256<T>, Vector256Ops<T>, T>(ref src, layout, c0, c1, mean, m2);
                    break;
                case VectorWidth.Vector128:
                    ShortRunMomentsByChannel<Vector128<T>, Vector128Ops<T>, T>(ref src, layout, c0, c1, mean, m2);
                    break;
                default:
                    ShortRunMomentsByChannel<T, ScalarOps<T>, T>(ref src, layout, c0, c1, mean, m2);
                    break;
            }

            return;
        }

        int channels = c1 - c0;
        int accumulators = ShortRunState * VectorWidths.Lanes<T>(width) * channels;
        T[] state = ArrayPool<T>.Shared.Rent(accumulators + channels);
        double[] tails = ArrayPool<double>.Shared.Rent(2 * channels);
        try
        {
            ref T src = ref MemoryMarshal.GetReference(x);
            var scratch = new ShortRunScratch<T>(state.AsSpan(0, accumulators), state.AsSpan(accumulators, channels), tails.AsSpan(0, 2 * channels));
            switch (width)
            {
                case VectorWidth.Vector512:
                    ShortRunMomentsInMemoryOrder<Vector512<T>, Vector512Ops<T>, T>(ref src, layout, c0, c1, mean, m2, scratch, prefetch);
                    break;
                case VectorWidth.Vector256:
                    ShortRunMomentsInMemoryOrder<Vector256<T>, Vector256Ops<T>, T>(ref src, layout, c0, c1, mean, m2, scratch, prefetch);
                    break;
                case VectorWidth.Vector128:
                    ShortRunMomentsInMemoryOrder<Vector128<T>, Vector128Ops<T>, T>(ref src, layout, c0, c1, mean, m2, scratch, prefetch);
                    break;
                default:
                    ShortRunMomentsInMemoryOrder<T, ScalarOps<T>, T>(ref src, layout, c0, c1, mean, m2, scratch, prefetch);
                    break;
            }
        }
        finally
        {
            ArrayPool<T>.Shared.Return(state);
            ArrayPool<double>.Shared.Return(tails);
        }
    }

    /// <summary>Vectors of accumulators per channel in <see cref="ShortRunMomentsInMemoryOrder"/>: the even and the odd sum of each of S1 and S2.</summary>
    private const int ShortRunState = 4;

    /// <summary>The scratch of <see cref="ShortRunMomentsInMemoryOrder"/>: per channel, its vector accumulators, its shift and its two tail sums.</summary>
    private readonly ref struct ShortRunScratch<T>(Span<T> accumulators, Span<T> shifts, Span<double> tails)
    {
        public readonly Span<T> Accumulators = accumulators;
        public readonly Span<T> Shifts = shifts;
        public readonly Span<double> Tails = tails;
    }

    /// <summary>
    /// <see cref="ShortRunMoments{T}"/> channel by channel: each block's runs of one channel, strided, its accumulators in
    /// registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ShortRunMomentsByChannel<TVec, TOps, T>(ref T x, ChannelLayout layout, int c0, int c1, Span<double> mean, Span<double> m2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int inner = layout.Inner;
        int blockRuns = ShortRunBlockRuns(layout);
        nint stride = (nint)layout.Channels * inner;
        for (int o0 = 0; o0 < layout.Outer; o0 += blockRuns)
        {
            int runs = Math.Min(layout.Outer - o0, blockRuns);
            var weights = new BlockWeights((double)o0 * inner, runs * inner);
            for (int c = c0; c < c1; c++)
            {
                ref T first = ref Unsafe.Add(ref x, (o0 * stride) + ((nint)c * inner));
                T k = T.CreateTruncating(o0 == 0 ? Sum<TVec, TOps, T>(ref first, inner) / inner : mean[c]);
                double s1 = ShortRunBlockSums<TVec, TOps, T>(ref first, stride, runs, inner, k, out double s2);
                MergeShortRunBlock<TVec, TOps, T>(ref first, stride, runs, inner, k, s1, s2, ref mean[c], ref m2[c], weights);
            }
        }
    }

    /// <summary>
    /// <see cref="ShortRunMoments{T}"/> in memory order, outer index by outer index, each channel's accumulators kept in
    /// <paramref name="scratch"/> between its runs (its runs lie C runs apart): four vectors, and two doubles for runs
    /// shorter than a vector.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ShortRunMomentsInMemoryOrder<TVec, TOps, T>(
        ref T x, ChannelLayout layout, int c0, int c1, Span<double> mean, Span<double> m2, ShortRunScratch<T> scratch, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int inner = layout.Inner;
        int blockRuns = ShortRunBlockRuns(layout);
        nint stride = (nint)layout.Channels * inner;
        int state = ShortRunState * TOps.Count;
        TVec drop = LastVectorDrop<TVec, TOps, T>(inner);
        ref T accumulators = ref MemoryMarshal.GetReference(scratch.Accumulators);
        ref double tails = ref MemoryMarshal.GetReference(scratch.Tails);
        Span<T> shifts = scratch.Shifts;
        for (int o0 = 0; o0 < layout.Outer; o0 += blockRuns)
        {
            int runs = Math.Min(layout.Outer - o0, blockRuns);
            scratch.Accumulators.Clear();
            scratch.Tails.Clear();
            for (int o = o0; o < o0 + runs; o++)
            {
                ref T slab = ref Unsafe.Add(ref x, (o * stride) + ((nint)c0 * inner));
                for (int c = 0; c < c1 - c0; c++)
                {
                    ref T run = ref Unsafe.Add(ref slab, (nint)c * inner);
                    if (o == o0)
                    {
                        shifts[c] = T.CreateTruncating(o0 == 0 ? Sum<TVec, TOps, T>(ref run, inner) / inner : mean[c0 + c]);
                    }

                    ref T sums = ref Unsafe.Add(ref accumulators, c * state);
                    var acc = new ShiftedAccumulators<TVec, TOps, T>(shifts[c], ref sums);
                    AddRun(ref acc, ref run, inner, drop, ref Unsafe.Add(ref tails, 2 * c), ref Unsafe.Add(ref tails, (2 * c) + 1), prefetch);
                    acc.Save(ref sums);
                }
            }

            var weights = new BlockWeights((double)o0 * inner, runs * inner);
            for (int c = 0; c < c1 - c0; c++)
            {
                var acc = new ShiftedAccumulators<TVec, TOps, T>(shifts[c], ref Unsafe.Add(ref accumulators, c * state));
                double s1 = acc.Reduce(out double s2) + Unsafe.Add(ref tails, 2 * c);
                s2 += Unsafe.Add(ref tails, (2 * c) + 1);
                ref T first = ref Unsafe.Add(ref x, (o0 * stride) + ((nint)(c0 + c) * inner));
                MergeShortRunBlock<TVec, TOps, T>(ref first, stride, runs, inner, shifts[c], s1, s2, ref mean[c0 + c], ref m2[c0 + c], weights);
            }
        }
    }

    /// <summary>
    /// Merges one channel's block of short runs (sums <paramref name="sum1"/>, <paramref name="sum2"/> around
    /// <paramref name="shift"/>) into its running mean and M2; first, if the shift was not close enough
    /// (<see cref="ShiftWasClose(double, double, int)"/>), the block is read again around its own T-rounded mean.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MergeShortRunBlock<TVec, TOps, T>(
        ref T first, nint stride, int runs, int inner, T shift, double sum1, double sum2, ref double mean, ref double m2, in BlockWeights weights)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int count = runs * inner;
        if (!ShiftWasClose(sum1, sum2, count))
        {
            double sum = 0;
            for (int o = 0; o < runs; o++)
            {
                sum += Sum<TVec, TOps, T>(ref Unsafe.Add(ref first, o * stride), inner);
            }

            shift = T.CreateTruncating(sum / count);
            sum1 = ShortRunBlockSums<TVec, TOps, T>(ref first, stride, runs, inner, shift, out sum2);
        }

        MergeBlock(ref mean, ref m2, weights, double.CreateTruncating(shift), sum1, sum2);
    }

    /// <summary>
    /// <c>S1</c> (returned) and <c>S2</c> of one channel's block of <paramref name="runs"/> runs, <paramref name="stride"/>
    /// elements apart, around <paramref name="shift"/>: the operations <see cref="ShortRunMomentsInMemoryOrder"/> gives
    /// that channel, in the same order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double ShortRunBlockSums<TVec, TOps, T>(ref T first, nint stride, int runs, int inner, T shift, out double sum2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var acc = new ShiftedAccumulators<TVec, TOps, T>(shift);
        TVec drop = LastVectorDrop<TVec, TOps, T>(inner);
        double tail1 = 0, tail2 = 0;
        for (int o = 0; o < runs; o++)
        {
            AddRun(ref acc, ref Unsafe.Add(ref first, o * stride), inner, drop, ref tail1, ref tail2, prefetch: false);
        }

        double sum1 = acc.Reduce(out sum2) + tail1;
        sum2 += tail2;
        return sum1;
    }

    /// <summary>
    /// One run into a channel's block sums: its whole vectors into <paramref name="acc"/> (two at a time, an odd last one to
    /// the even pair), then its last <c>inner mod w</c> elements: in the vector that ends the run, without its lanes in
    /// <paramref name="drop"/> (<see cref="LastVectorDrop"/>), or, when the run is shorter than a vector, one by one into the
    /// doubles <paramref name="tail1"/> (S1) and <paramref name="tail2"/> (S2).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddRun<TVec, TOps, T>(ref ShiftedAccumulators<TVec, TOps, T> acc, ref T run, int inner, TVec drop, ref double tail1, ref double tail2, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        int i = 0;
        for (; i <= inner - (2 * width); i += 2 * width)
        {
            if (prefetch)
            {
                Prefetch.Ahead(ref run, (nuint)i);
            }

            acc.AddTwo(ref run, (nuint)i);
        }

        for (; i <= inner - width; i += width)
        {
            acc.AddOne(ref run, (nuint)i);
        }

        if (i == inner)
        {
            return;
        }

        if (inner >= width)
        {
            acc.AddLast(ref run, (nuint)(inner - width), drop);
            return;
        }

        double k = double.CreateTruncating(acc.Shift);
        for (; i < inner; i++)
        {
            double d = double.CreateTruncating(Unsafe.Add(ref run, i)) - k;
            tail1 += d;
            tail2 += d * d;
        }
    }

    /// <summary>
    /// The lanes of a run's last vector (the one ending with the run) that the vectors before it already took: the first
    /// <c>w - inner mod w</c>; none when the run is whole vectors.
    /// </summary>
    private static TVec LastVectorDrop<TVec, TOps, T>(int inner)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T> => TOps.LanesBelow(TOps.Count - (inner % TOps.Count));

    /// <summary>
    /// The backward's channels-first sums over channels [c0, c1) with short runs (<see cref="HasShortRuns{T}"/>), added to
    /// <paramref name="sumDy"/> (<c>sum(dy)</c>) and <paramref name="sumDyCentered"/> (<c>sum(dy (x - center))</c>), as
    /// the statistics take them (<see cref="ShortRunMoments{T}"/>): a block of <see cref="ShortRunBlockRuns"/> runs of a
    /// channel at a time in <see cref="GradientAccumulators{TVec, TOps, T}"/>, each run's last <c>inner mod w</c>
    /// elements in the vector that ends it, masked (one by one in double when the run is shorter than a vector), the
    /// block reduced once and added in double. Channel by channel in cache on runs of at most
    /// <see cref="ShortRunByChannelBytes"/>, otherwise in memory order with each channel's accumulators in a pooled
    /// scratch (<paramref name="byChannel"/> overrides; the two give the same bits, and each channel the bits it gets
    /// alone).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void ShortRunGradientSums<T>(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, ChannelLayout layout, int c0, int c1, ReadOnlySpan<T> center,
        Span<double> sumDy, Span<double> sumDyCentered, VectorWidth width, bool prefetch, bool? byChannel = null)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref T xs = ref MemoryMarshal.GetReference(x);
        ref T gs = ref MemoryMarshal.GetReference(dy);
        ref T m = ref MemoryMarshal.GetReference(center);
        if (byChannel ?? (!prefetch && layout.Inner * sizeof(T) <= ShortRunByChannelBytes))
        {
            switch (width)
            {
                case VectorWidth.Vector512:
                    ShortRunGradientSumsByChannel<Vector512<T>, Vector512Ops<T>, T>(ref xs, ref gs, layout, c0, c1, ref m, sumDy, sumDyCentered);
                    break;
                case VectorWidth.Vector256:
                    ShortRunGradientSumsByChannel<Vector256<T>, Vector256Ops<T>, T>(ref xs, ref gs, layout, c0, c1, ref m, sumDy, sumDyCentered);
                    break;
                case VectorWidth.Vector128:
                    ShortRunGradientSumsByChannel<Vector128<T>, Vector128Ops<T>, T>(ref xs, ref gs, layout, c0, c1, ref m, sumDy, sumDyCentered);
                    break;
                default:
                    ShortRunGradientSumsByChannel<T, ScalarOps<T>, T>(ref xs, ref gs, layout, c0, c1, ref m, sumDy, sumDyCentered);
                    break;
            }

            return;
        }

        int channels = c1 - c0;
        int accumulators = ShortRunState * VectorWidths.Lanes<T>(width) * channels;
        T[] state = ArrayPool<T>.Shared.Rent(accumulators);
        double[] tails = ArrayPool<double>.Shared.Rent(2 * channels);
        try
        {
            Span<T> acc = state.AsSpan(0, accumulators);
            Span<double> tail = tails.AsSpan(0, 2 * channels);
            switch (width)
            {
                case VectorWidth.Vector512:
                    ShortRunGradientSumsInMemoryOrder<Vector512<T>, Vector512Ops<T>, T>(ref xs, ref gs, layout, c0, c1, ref m, sumDy, sumDyCentered, acc, tail, prefetch);
                    break;
                case VectorWidth.Vector256:
                    ShortRunGradientSumsInMemoryOrder<Vector256<T>, Vector256Ops<T>, T>(ref xs, ref gs, layout, c0, c1, ref m, sumDy, sumDyCentered, acc, tail, prefetch);
                    break;
                case VectorWidth.Vector128:
                    ShortRunGradientSumsInMemoryOrder<Vector128<T>, Vector128Ops<T>, T>(ref xs, ref gs, layout, c0, c1, ref m, sumDy, sumDyCentered, acc, tail, prefetch);
                    break;
                default:
                    ShortRunGradientSumsInMemoryOrder<T, ScalarOps<T>, T>(ref xs, ref gs, layout, c0, c1, ref m, sumDy, sumDyCentered, acc, tail, prefetch);
                    break;
            }
        }
        finally
        {
            ArrayPool<T>.Shared.Return(state);
            ArrayPool<double>.Shared.Return(tails);
        }
    }

    /// <summary><see cref="ShortRunGradientSums{T}"/> channel by channel: each block's runs of one channel, strided, its accumulators in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ShortRunGradientSumsByChannel<TVec, TOps, T>(
        ref T x, ref T dy, ChannelLayout layout, int c0, int c1, ref T center, Span<double> sumDy, Span<double> sumDyCentered)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int inner = layout.Inner;
        int blockRuns = ShortRunBlockRuns(layout);
        nint stride = (nint)layout.Channels * inner;
        TVec drop = LastVectorDrop<TVec, TOps, T>(inner);
        for (int o0 = 0; o0 < layout.Outer; o0 += blockRuns)
        {
            int runs = Math.Min(layout.Outer - o0, blockRuns);
            for (int c = c0; c < c1; c++)
            {
                nint first = (o0 * stride) + ((nint)c * inner);
                var acc = new GradientAccumulators<TVec, TOps, T>(Unsafe.Add(ref center, c));
                double tail1 = 0, tail2 = 0;
                for (int o = 0; o < runs; o++)
                {
                    nint run = first + (o * stride);
                    AddGradientRun(ref acc, ref Unsafe.Add(ref x, run), ref Unsafe.Add(ref dy, run), inner, drop, ref tail1, ref tail2, prefetch: false);
                }

                sumDy[c] += acc.Reduce(out double s2) + tail1;
                sumDyCentered[c] += s2 + tail2;
            }
        }
    }

    /// <summary>
    /// <see cref="ShortRunGradientSums{T}"/> in memory order, outer index by outer index, each channel's accumulators kept
    /// in <paramref name="state"/> (four vectors) and <paramref name="tails"/> (two doubles) between its runs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ShortRunGradientSumsInMemoryOrder<TVec, TOps, T>(
        ref T x, ref T dy, ChannelLayout layout, int c0, int c1, ref T center, Span<double> sumDy, Span<double> sumDyCentered,
        Span<T> state, Span<double> tails, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int inner = layout.Inner;
        int blockRuns = ShortRunBlockRuns(layout);
        nint stride = (nint)layout.Channels * inner;
        int size = ShortRunState * TOps.Count;
        TVec drop = LastVectorDrop<TVec, TOps, T>(inner);
        ref T accumulators = ref MemoryMarshal.GetReference(state);
        ref double tail = ref MemoryMarshal.GetReference(tails);
        for (int o0 = 0; o0 < layout.Outer; o0 += blockRuns)
        {
            int runs = Math.Min(layout.Outer - o0, blockRuns);
            state.Clear();
            tails.Clear();
            for (int o = o0; o < o0 + runs; o++)
            {
                nint slab = (o * stride) + ((nint)c0 * inner);
                for (int c = 0; c < c1 - c0; c++)
                {
                    nint run = slab + ((nint)c * inner);
                    ref T sums = ref Unsafe.Add(ref accumulators, c * size);
                    var acc = new GradientAccumulators<TVec, TOps, T>(Unsafe.Add(ref center, c0 + c), ref sums);
                    AddGradientRun(
                        ref acc, ref Unsafe.Add(ref x, run), ref Unsafe.Add(ref dy, run), inner, drop,
                        ref Unsafe.Add(ref tail, 2 * c), ref Unsafe.Add(ref tail, (2 * c) + 1), prefetch);
                    acc.Save(ref sums);
                }
            }

            for (int c = 0; c < c1 - c0; c++)
            {
                var acc = new GradientAccumulators<TVec, TOps, T>(Unsafe.Add(ref center, c0 + c), ref Unsafe.Add(ref accumulators, c * size));
                sumDy[c0 + c] += acc.Reduce(out double s2) + Unsafe.Add(ref tail, 2 * c);
                sumDyCentered[c0 + c] += s2 + Unsafe.Add(ref tail, (2 * c) + 1);
            }
        }
    }

    /// <summary>
    /// One run of x and dy into a channel's gradient sums, as <see cref="AddRun"/> takes one into the statistics: whole
    /// vectors two at a time, then the last <c>inner mod w</c> elements in the masked vector that ends the run, or one
    /// by one into <paramref name="tail1"/> (<c>sum(dy)</c>) and <paramref name="tail2"/> when the run is shorter than a
    /// vector.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddGradientRun<TVec, TOps, T>(
        ref GradientAccumulators<TVec, TOps, T> acc, ref T x, ref T dy, int inner, TVec drop, ref double tail1, ref double tail2, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        int j = 0;
        for (; j <= inner - (2 * width); j += 2 * width)
        {
            if (prefetch)
            {
                Prefetch.PairAhead(ref dy, (nuint)j);
                Prefetch.PairAhead(ref x, (nuint)j);
            }

            acc.AddTwo(ref x, ref dy, (nuint)j);
        }

        for (; j <= inner - width; j += width)
        {
            acc.AddOne(ref x, ref dy, (nuint)j);
        }

        if (j == inner)
        {
            return;
        }

        if (inner >= width)
        {
            acc.AddLast(ref x, ref dy, (nuint)(inner - width), drop);
            return;
        }

        for (; j < inner; j++)
        {
            double g = double.CreateTruncating(Unsafe.Add(ref dy, j));
            tail1 += g;
            tail2 += g * double.CreateTruncating(Unsafe.Add(ref x, j) - acc.Center);
        }
    }

    /// <summary>
    /// Where a stream of vectors through a channels-first tensor (runs of <c>inner</c> elements, channel k mod C for run k)
    /// stands: the end of the run holding its current element, that run's channel and the next run's. For runs at least a
    /// vector long, so that a vector meets at most two runs: when <see cref="InRun"/> is at most the width, the next
    /// vector starts in the next run, and the stream calls <see cref="Advance"/>.
    /// </summary>
    private struct RunCursor
    {
        private readonly int _inner;
        private readonly int _channels;
        private nint _end;

        /// <summary>The cursor at element <paramref name="i"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public RunCursor(nint i, int inner, int channels)
        {
            _inner = inner;
            _channels = channels;
            _end = ((i / inner) + 1) * inner;
            Channel = (int)(i / inner % channels);
            Next = Channel + 1 == channels ? 0 : Channel + 1;
        }

        /// <summary>The current run's channel.</summary>
        public int Channel { get; private set; }

        /// <summary>The next run's channel.</summary>
        public int Next { get; private set; }

        /// <summary>How many elements from <paramref name="i"/> on are still in the current run.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly nint InRun(nint i) => _end - i;

        /// <summary>Moves to the next run.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Advance()
        {
            _end += _inner;
            Channel = Next;
            Next = Next + 1 == _channels ? 0 : Next + 1;
        }
    }
}
