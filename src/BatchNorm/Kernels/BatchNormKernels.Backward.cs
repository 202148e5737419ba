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
    /// <summary>
    /// The two per-channel sums every backward pass needs, over ALL positions (masked outputs depend on the
    /// statistics too): <c>sumDy = sum(dy)</c> and <c>sumDyCentered = sum(dy * (x - center))</c>, accumulated in T within
    /// cache-sized blocks and in double across them. <paramref name="center"/> is the T-rounded mean used by the
    /// forward pass, so <c>x - center</c> is exact near the mean.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void GradientSums<T>(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, ChannelLayout layout, ReadOnlySpan<T> center,
        Span<double> sumDy, Span<double> sumDyCentered, VectorWidth width, int maxDegree = 1)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Debug.Assert(x.Length == layout.Length && dy.Length == layout.Length && center.Length == layout.Channels);
        if (IsSmallGradientBatch<T>(layout))
        {
            SmallGradientSums(x, dy, layout.Outer, layout.Channels, center, sumDy, sumDyCentered, width);
            return;
        }

        ChannelFold fold = ChannelFold.For<T>(layout, width);
        if (fold.IsFolded)
        {
            // Few channels: sums per super-channel of the folded rows and per channel of the remaining rows, added up.
            int folded = fold.Folded.Channels;
            int channels = layout.Channels;
            Span<T> scratch = stackalloc T[folded];
            Span<double> sums = stackalloc double[2 * (folded + channels)];
            int split = fold.FoldedLength;
            GradientSums<T>(x[..split], dy[..split], fold.Folded, fold.Repeat(center, scratch, 0), sums[..folded], sums.Slice(folded, folded), width, maxDegree);
            Span<double> tail = sums[(2 * folded)..];
            if (fold.Tail.Outer != 0)
            {
                GradientSums<T>(x[split..], dy[split..], fold.Tail, center, tail[..channels], tail[channels..], width, 1);
            }

            fold.AddUp(sums[..folded], tail[..channels], sumDy);
            fold.AddUp(sums.Slice(folded, folded), tail[channels..], sumDyCentered);
            return;
        }

        bool prefetch = Prefetch.IsWorthIt<T>(layout.Length, Prefetch.BackwardTensors);
        if (Partition.IsLarge(layout))
        {
            PartitionedGradientSums(x, dy, layout, center, sumDy, sumDyCentered, width, maxDegree, prefetch);
            return;
        }

        GradientSums(x, dy, layout, center, sumDy, sumDyCentered, width, prefetch);
    }

    /// <summary>
    /// Whether a batch's gradient sums take <see cref="SmallGradientSums{T}"/>: a small batch (<see cref="IsSmallBatch{T}"/>)
    /// of at least 8 channels, and for float at most 32. Fewer channels take the folded sums (<see cref="ChannelFold"/>),
    /// which were faster there: float32 [8, 3] took 1.27-1.29 times as long the small way. Float is widened to half the
    /// lanes, which wider float rows did not repay: [8, 48] took 1.03-1.06 times as long, [8, 64] 1.07-1.14 and [2, 1024]
    /// 1.05-1.07 (against [8, 16] 0.75-0.88, [8, 24] 0.91-0.99 and float64 [8, 128] 0.72-0.75; the layer's backward, two
    /// builds alternating in one process). It depends on the shape only.
    /// </summary>
    internal static unsafe bool IsSmallGradientBatch<T>(ChannelLayout layout)
        where T : unmanaged => IsSmallBatch<T>(layout) && layout.Channels >= 8 && (sizeof(T) == sizeof(double) || layout.Channels <= 32);

    /// <summary>
    /// The gradient sums of a small channels-last batch (<see cref="IsSmallGradientBatch{T}"/>), each channel in double precision
    /// in one read of its columns: <c>sumDy = sum(dy)</c> and <c>sumDyCentered = sum(dy (x - center))</c>, x, dy and the
    /// centre widened exactly, the even and the odd rows summed apart and then added. Every lane does the same operations
    /// in the same order at every width. As for the statistics (<see cref="SmallMeansAndSquaredDeviations{T}"/>), the
    /// blocked sums in T with their scratch and widening merges cost more than the data here (measurements at
    /// <see cref="IsSmallGradientBatch{T}"/>).
    /// </summary>
    private static void SmallGradientSums<T>(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, int rows, int channels, ReadOnlySpan<T> center, Span<double> sumDy, Span<double> sumDyCentered, VectorWidth width)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref T xs = ref MemoryMarshal.GetReference(x);
        ref T gs = ref MemoryMarshal.GetReference(dy);
        ref T m = ref MemoryMarshal.GetReference(center);
        ref double s1 = ref MemoryMarshal.GetReference(sumDy);
        ref double s2 = ref MemoryMarshal.GetReference(sumDyCentered);
        int c = width switch
        {
            VectorWidth.Vector512 => SmallGradientSums<Vector512<double>, Vector512Ops<double>, T>(ref xs, ref gs, rows, channels, 0, ref m, ref s1, ref s2),
            VectorWidth.Vector256 => SmallGradientSums<Vector256<double>, Vector256Ops<double>, T>(ref xs, ref gs, rows, channels, 0, ref m, ref s1, ref s2),
            VectorWidth.Vector128 => SmallGradientSums<Vector128<double>, Vector128Ops<double>, T>(ref xs, ref gs, rows, channels, 0, ref m, ref s1, ref s2),
            _ => 0,
        };
        SmallGradientSums<double, ScalarOps<double>, T>(ref xs, ref gs, rows, channels, c, ref m, ref s1, ref s2);
    }

    /// <summary>
    /// Whether the backward pass of a training call without a mask over <paramref name="layout"/> takes
    /// <see cref="SmallBackward{T}"/>: a small batch whose gradient sums take <see cref="SmallGradientSums{T}"/>
    /// (<see cref="IsSmallGradientBatch{T}"/>), of at least one vector of channels at <paramref name="width"/>.
    /// </summary>
    internal static bool IsSmallBackward<T>(ChannelLayout layout, VectorWidth width)
        where T : unmanaged => IsSmallGradientBatch<T>(layout) && layout.Channels >= VectorWidths.Lanes<T>(width);

    /// <summary>
    /// The whole backward pass of a small batch after a training call without a mask (<see cref="IsSmallBackward{T}"/>):
    /// the gradient sums of <see cref="SmallGradientSums{T}"/> over every channel, then one vector of T's channels at a
    /// time from the coefficients of <see cref="ChannelGradientCoefficients{T}"/> to the input gradient of
    /// <see cref="InputGradient{T}"/>, the coefficients rounded to T in registers rather than stored and read back.
    /// dbeta is the sum of dy, so the sums go straight into <paramref name="betaGradient"/>; dgamma goes into
    /// <paramref name="gammaGradient"/>. Every value has the bits of those kernels run one after another, and
    /// <paramref name="dx"/> may be <paramref name="dy"/> (each element is read before it is written).
    /// </summary>
    /// <remarks>
    /// As for the training forward (<see cref="SmallTrainingForward{T}"/>): at these sizes the call is a chain of
    /// dependent steps, and the stores and reloads between the separate kernels lengthened it. The layer's backward
    /// against the separate kernels (thirty-fifth session, both slot orders): float32 [8, 16] 0.70-0.92, [8, 32]
    /// 0.77-0.85, float64 [8, 16] 0.76-0.99, [16, 64] 0.69-0.84, [8, 100] 0.69-0.84.
    /// </remarks>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void SmallBackward<T>(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dx, ChannelLayout layout, ReadOnlySpan<T> center,
        ReadOnlySpan<double> mean, ReadOnlySpan<double> inverseStddev, ReadOnlySpan<double> effectiveGamma, ReadOnlySpan<double> r,
        ReadOnlySpan<double> d, double inverseDenominator, Span<double> sumDyCentered, Span<double> gammaGradient, Span<double> betaGradient,
        VectorWidth width)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Debug.Assert(IsSmallBackward<T>(layout, width) && x.Length == layout.Length && dy.Length == layout.Length && dx.Length == layout.Length);
        Debug.Assert(!r.IsEmpty && !d.IsEmpty);
        int rows = layout.Outer;
        int channels = layout.Channels;
        SmallGradientSums(x, dy, rows, channels, center, betaGradient, sumDyCentered, width);
        var steps = new GradientCoefficientsLoop<T>(
            mean, inverseStddev, effectiveGamma, center, betaGradient, sumDyCentered, r, d, inverseDenominator, 0.0, gammaGradient, default, default, default);
        ref T xs = ref MemoryMarshal.GetReference(x);
        ref T gs = ref MemoryMarshal.GetReference(dy);
        ref T ds = ref MemoryMarshal.GetReference(dx);
        ref T ms = ref MemoryMarshal.GetReference(center);

        // Whole vectors at the width, then the channels left at each narrower width (the same bits at every width).
        int c = 0;
        if (width >= VectorWidth.Vector512)
        {
            c = SmallBackwardBlocks<Vector512<T>, Vector512Ops<T>, Vector512<double>, Vector512Ops<double>, T>(
                ref steps, ref xs, ref gs, ref ds, ref ms, rows, channels, c);
        }

        if (width >= VectorWidth.Vector256 && c < channels)
        {
            c = SmallBackwardBlocks<Vector256<T>, Vector256Ops<T>, Vector256<double>, Vector256Ops<double>, T>(
                ref steps, ref xs, ref gs, ref ds, ref ms, rows, channels, c);
        }

        if (width >= VectorWidth.Vector128 && c < channels)
        {
            c = SmallBackwardBlocks<Vector128<T>, Vector128Ops<T>, Vector128<double>, Vector128Ops<double>, T>(
                ref steps, ref xs, ref gs, ref ds, ref ms, rows, channels, c);
        }

        if (c < channels)
        {
            SmallBackwardBlocks<T, ScalarOps<T>, double, ScalarOps<double>, T>(ref steps, ref xs, ref gs, ref ds, ref ms, rows, channels, c);
        }
    }

    /// <summary>
    /// The vectors of channels of <see cref="SmallBackward{T}"/> from <paramref name="start"/>, each of TVec's lanes (two
    /// double vectors for float, one for double); returns where it stopped. Not inlined, so that each width's copy gets
    /// the JIT's whole inlining budget (see <see cref="SmallTrainingForward{T}"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int SmallBackwardBlocks<TVec, TOps, TWide, TWideOps, T>(
        ref GradientCoefficientsLoop<T> steps, ref T x, ref T dy, ref T dx, ref T center, int rows, int channels, int start)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where TWide : struct
        where TWideOps : IVectorOps<TWide, double>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        bool two = TOps.Count != TWideOps.Count;
        nuint half = (nuint)TWideOps.Count;
        nuint stride = (nuint)channels;
        int c = start;
        for (; c <= channels - TOps.Count; c += TOps.Count)
        {
            nuint i = (nuint)c;
            TWide a0 = steps.Step<TWide, TWideOps>(i, out TWide p0, out TWide q0);
            TWide a1 = a0, p1 = p0, q1 = q0;
            if (two)
            {
                a1 = steps.Step<TWide, TWideOps>(i + half, out p1, out q1);
            }

            TVec m = TOps.Load(ref center, i);
            TVec a = TOps.NarrowFrom(a0, a1);
            TVec p = TOps.NarrowFrom(p0, p1);
            TVec q = TOps.NarrowFrom(q0, q1);
            for (int r = 0; r < rows; r++, i += stride)
            {
                // dy a + ((x - center) p + q), as GradientAt.
                TVec statistics = TOps.Add(TOps.Multiply(TOps.Subtract(TOps.Load(ref x, i), m), p), q);
                TOps.Store(TOps.Add(TOps.Multiply(TOps.Load(ref dy, i), a), statistics), ref dx, i);
            }
        }

        return c;
    }

    /// <summary>
    /// The channels from <paramref name="start"/> of <see cref="SmallGradientSums{T}"/>, two vectors at a time and then one
    /// (eight chains of additions in flight, or four); returns where it stopped.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int SmallGradientSums<TVec, TOps, T>(ref T x, ref T dy, int rows, int channels, int start, ref T center, ref double sumDy, ref double sumDyCentered)
        where TVec : struct
        where TOps : IVectorOps<TVec, double>
        where T : unmanaged
    {
        int lanes = TOps.Count;
        int c = start;
        for (; c <= channels - (2 * lanes); c += 2 * lanes)
        {
            SmallGradientColumns<TVec, TOps, T, TwoChunks>(ref x, ref dy, rows, channels, c, ref center, ref sumDy, ref sumDyCentered);
        }

        for (; c <= channels - lanes; c += lanes)
        {
            SmallGradientColumns<TVec, TOps, T, OneChunk>(ref x, ref dy, rows, channels, c, ref center, ref sumDy, ref sumDyCentered);
        }

        return c;
    }

    /// <summary>One or two vectors of channels from <paramref name="c"/> of <see cref="SmallGradientSums{TVec, TOps, T}"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SmallGradientColumns<TVec, TOps, T, TChunks>(
        ref T x, ref T dy, int rows, int channels, int c, ref T center, ref double sumDy, ref double sumDyCentered)
        where TVec : struct
        where TOps : IVectorOps<TVec, double>
        where T : unmanaged
        where TChunks : IChunkCount
    {
        bool two = TChunks.Value == 2;
        nuint l = (nuint)TOps.Count;
        nuint stride = (nuint)channels;
        nuint start = (nuint)c;
        TVec k0 = TOps.LoadWidened(ref center, start);
        TVec k1 = two ? TOps.LoadWidened(ref center, start + l) : k0;

        // The even rows in e*, the odd rows in o*; *g the sums of dy, *d those of dy (x - centre).
        TVec eg0 = TOps.Zero, og0 = TOps.Zero, ed0 = TOps.Zero, od0 = TOps.Zero;
        TVec eg1 = TOps.Zero, og1 = TOps.Zero, ed1 = TOps.Zero, od1 = TOps.Zero;
        nuint i = start;
        int r = 0;
        for (; r + 1 < rows; r += 2, i += 2 * stride)
        {
            AddGradient<TVec, TOps, T>(ref eg0, ref ed0, ref x, ref dy, i, k0);
            AddGradient<TVec, TOps, T>(ref og0, ref od0, ref x, ref dy, i + stride, k0);
            if (two)
            {
                AddGradient<TVec, TOps, T>(ref eg1, ref ed1, ref x, ref dy, i + l, k1);
                AddGradient<TVec, TOps, T>(ref og1, ref od1, ref x, ref dy, i + stride + l, k1);
            }
        }

        if (r < rows)
        {
            AddGradient<TVec, TOps, T>(ref eg0, ref ed0, ref x, ref dy, i, k0);
            if (two)
            {
                AddGradient<TVec, TOps, T>(ref eg1, ref ed1, ref x, ref dy, i + l, k1);
            }
        }

        TOps.Store(TOps.Add(eg0, og0), ref sumDy, start);
        TOps.Store(TOps.Add(ed0, od0), ref sumDyCentered, start);
        if (two)
        {
            TOps.Store(TOps.Add(eg1, og1), ref sumDy, start + l);
            TOps.Store(TOps.Add(ed1, od1), ref sumDyCentered, start + l);
        }
    }

    /// <summary><c>sumDy += dy[i]</c>, <c>sumDyCentered += dy[i] (x[i] - k)</c>, widened to double.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddGradient<TVec, TOps, T>(ref TVec sumDy, ref TVec sumDyCentered, ref T x, ref T dy, nuint i, TVec k)
        where TVec : struct
        where TOps : IVectorOps<TVec, double>
        where T : unmanaged
    {
        TVec g = TOps.LoadWidened(ref dy, i);
        sumDy = TOps.Add(sumDy, g);
        sumDyCentered = TOps.Add(sumDyCentered, TOps.Multiply(g, TOps.Subtract(TOps.LoadWidened(ref x, i), k)));
    }

    /// <summary>
    /// The backward's vector width over <paramref name="layout"/>, on a machine whose widest is <paramref name="best"/>:
    /// <see cref="VectorWidths.HalfFromMemory{T}"/> where the tensors come from memory (x, dy and dx together
    /// <see cref="Prefetch.WorkingSetBytes"/> or more). It decides the small-batch path and is the gradient sums' width
    /// except for rows of a page or more from memory (<see cref="GradientSumsWidth{T}"/>); since the forty-sixth session
    /// <see cref="InputGradient{T}"/> runs at <paramref name="best"/> on every layout.
    /// </summary>
    /// <remarks>
    /// Why dx left this rule: on the Zen 4 machine (32 KiB L1), dx alone from memory with x 168 and dy 56 bytes below dx
    /// in the page (the benchmarks' placement), 512 bits against 256, fastest of 15 rounds: channels first float32
    /// [32, 64, 56, 56] 2.98 ms against 4.05 (at x, dy and dx far apart 2.66 against 3.05), float64 5.94 against 7.95
    /// (5.74 both), [64, 2048, 7, 7] float32 2.91 against 3.37 (float64 6.63 both), [32, 256, 28, 28] float32 2.94
    /// against 3.20; channels last, on the walks older than the row streams, float32 [3136, 2048] 3.61-3.69 against
    /// 3.95-4.23, float64 7.30-7.86 against 7.86-8.58, float64 [100352, 64] 6.01-6.25 against 7.46-9.12, float32
    /// [12544, 512] 2.87-3.04 against 3.80-4.09.
    /// <para>
    /// On the Intel machine, where the rule came from: the layer's backward through the public API, this rule against 512 bits everywhere, builds alternating in one
    /// process (fastest of 16 rounds, one thread), time over the old time: float32 [64, 7, 7, 2048] 0.85 (the sums alone
    /// at 256 bits 0.93, dx alone 0.98), [12544, 512] 0.92, [32, 64, 56, 56] channels first 0.86; float64
    /// [32, 56, 56, 64] 0.84, [32, 64, 56, 56] 0.93, [64, 7, 7, 2048] 0.91-1.01; on two threads 0.93-1.04. Narrow rows and
    /// tensors in cache keep 512 bits: at 256 bits float32 [32, 56, 56, 64] (eight vectors, the wide loop) took 1.07 and
    /// [256, 1024] 1.09. The GC starts large arrays 88 bytes into a page, so every 512-bit load of such a tensor straddles
    /// two cache lines: the sums' loop from memory took 1.29x a copy with x and dy on a line and 1.59x 24 bytes off it at
    /// 512 bits, and 1.24x both ways at 256 bits (dx, whose rows are shifted so that its stores are aligned: 1.39-1.44x
    /// and 1.58-1.69x against 1.31-1.43x).
    /// </para>
    /// </remarks>
    public static VectorWidth BackwardWidth<T>(VectorWidth best, ChannelLayout layout)
        where T : unmanaged => VectorWidths.HalfFromMemory<T>(best, layout, Prefetch.IsWorthIt<T>(layout.Length, Prefetch.BackwardTensors));

    /// <summary>
    /// The vector width for the gradient sums in the backward: <paramref name="best"/> for channels-last rows of a page or
    /// more from memory, which go in groups of rows (<see cref="WideRowGroupGradientSums{TVec, TOps, T}"/>: 4-13% faster
    /// at 512 bits than at 256 on the Zen 4 machine); <see cref="BackwardWidth{T}"/> otherwise. From memory, the row walk
    /// that narrower rows take was faster at 256 bits on most shapes (float64 [50176, 128] 4.14 ms against 4.45 at 512,
    /// [25088, 256] 4.77 against 5.09, float32 [12544, 512] 2.25 against 2.69; float64 [100352, 64] 4.42 against 4.14).
    /// The rule depends only on the layout: the same for any number of threads.
    /// </summary>
    public static unsafe VectorWidth GradientSumsWidth<T>(VectorWidth best, ChannelLayout layout)
        where T : unmanaged =>
        layout.IsChannelsLast && (long)layout.Channels * sizeof(T) >= CacheLine.PageBytes && Prefetch.IsWorthIt<T>(layout.Length, Prefetch.BackwardTensors)
            ? best
            : BackwardWidth<T>(best, layout);

    /// <summary>
    /// Fixed parts (stripes of rows channels last, channel groups otherwise), summed in part order: the same bits for any
    /// number of threads.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PartitionedGradientSums<T>(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, ChannelLayout layout, ReadOnlySpan<T> center,
        Span<double> sumDy, Span<double> sumDyCentered, VectorWidth width, int maxDegree, bool prefetch)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int channels = layout.Channels;
        int parts = layout.IsChannelsLast ? Partition.StripeCount(layout) : Partition.Degree(maxDegree, channels);
        double[] partial = ArrayPool<double>.Shared.Rent(2 * parts * channels);
        try
        {
            int degree = Partition.Degree(maxDegree, parts);
            if (degree == 1)
            {
                for (int part = 0; part < parts; part++)
                {
                    GradientPart(x, dy, layout, center, part, parts, partial, width, prefetch);
                }
            }
            else
            {
                ParallelGradientParts(x, dy, layout, center, parts, degree, partial, width, prefetch);
            }

            sumDy.Clear();
            sumDyCentered.Clear();
            for (int part = 0; part < parts; part++)
            {
                AccumulateWidened(sumDy, ref partial[2 * part * channels]);
                AccumulateWidened(sumDyCentered, ref partial[((2 * part) + 1) * channels]);
            }
        }
        finally
        {
            ArrayPool<double>.Shared.Return(partial);
        }
    }

    /// <summary>One part of <see cref="PartitionedGradientSums{T}"/>: a stripe of rows, or a group of channels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GradientPart<T>(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, ChannelLayout layout, ReadOnlySpan<T> center, int part, int parts, double[] partial, VectorWidth width, bool prefetch)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int channels = layout.Channels;
        Span<double> p1 = partial.AsSpan(2 * part * channels, channels);
        Span<double> p2 = partial.AsSpan(((2 * part) + 1) * channels, channels);
        if (layout.IsChannelsLast)
        {
            int stripeRows = Partition.StripeRows(channels);
            int r0 = part * stripeRows;
            int rows = Math.Min(stripeRows, layout.Outer - r0);
            GradientSums(
                x.Slice(r0 * channels, rows * channels), dy.Slice(r0 * channels, rows * channels),
                layout with { Outer = rows }, center, p1, p2, width, prefetch);
        }
        else
        {
            int c0 = (int)((long)channels * part / parts);
            int c1 = (int)((long)channels * (part + 1) / parts);
            p1.Clear();
            p2.Clear();
            GradientSumsChannelsFirst(x, dy, layout, c0, c1, center, p1, p2, width, prefetch);
        }
    }

    /// <summary>The parts on several threads.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ParallelGradientParts<T>(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, ChannelLayout layout, ReadOnlySpan<T> center, int parts, int degree, double[] partial, VectorWidth width, bool prefetch)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        fixed (T* px = x)
        fixed (T* pg = dy)
        fixed (T* pm = center)
        {
            Partition.For(parts, degree, new GradientParts<T>(px, pg, pm, layout, parts, partial, width, prefetch));
        }
    }

    /// <summary>One part of <see cref="ParallelGradientParts{T}"/> (the buffers are pinned by the caller).</summary>
    private readonly unsafe struct GradientParts<T>(T* x, T* dy, T* center, ChannelLayout layout, int parts, double[] partial, VectorWidth width, bool prefetch) : IPartBody
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int part) => GradientPart(
            new ReadOnlySpan<T>(x, layout.Length), new ReadOnlySpan<T>(dy, layout.Length), layout,
            new ReadOnlySpan<T>(center, layout.Channels), part, parts, partial, width, prefetch);
    }

    /// <summary>The gradient sums on the calling thread.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GradientSums<T>(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, ChannelLayout layout, ReadOnlySpan<T> center,
        Span<double> sumDy, Span<double> sumDyCentered, VectorWidth width, bool prefetch)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        sumDy.Clear();
        sumDyCentered.Clear();
        ref T xs = ref MemoryMarshal.GetReference(x);
        ref T gs = ref MemoryMarshal.GetReference(dy);
        ref T m = ref MemoryMarshal.GetReference(center);
        if (layout.IsChannelsLast)
        {
            // The sums (two arrays of C), stored beside the loop's loads of x, dy and the centre, placed so that those
            // loads do not wait on the stores (see CacheLine.PageBytes).
            T[]? rented = null;
            int channels = layout.Channels;
            bool paged = channels > StackChannels;

            // Rows in cache summed in pairs (WideRowPairGradientSums) that share a phase go in aligned vectors from x's
            // (WidePhasedGradientSums), with the centre and the sums rotated by it: the centre's copy goes after the sums.
            int lanes = VectorWidths.Lanes<T>(width);
            int phase = IsPairedGradientRow<T>(channels, lanes, prefetch) ? Math.Max(0, RowPhase.Of(x, layout.Outer, channels, lanes)) : 0;
            int arrays = phase > 0 ? 3 : 2;
            int length = paged
                ? (arrays * channels) + CacheLine.SpreadSlack<T>(arrays)
                : (2 * channels) + CacheLine.Slack<T>() + CacheLine.SlideSlack<T>() + (phase > 0 ? channels + CacheLine.Slack<T>() : 0);
            Span<T> buffer = paged ? (rented = ArrayPool<T>.Shared.Rent(length)) : stackalloc T[length];
            int loadedX = CacheLine.PageOffset(in Unsafe.Add(ref xs, phase));
            int loadedDy = CacheLine.PageOffset(in Unsafe.Add(ref gs, phase));
            int rowBytes = channels * Unsafe.SizeOf<T>();
            ReadOnlySpan<int> stored = [0, channels];
            scoped Span<T> rotated;
            scoped Span<T> scratch;
            if (paged)
            {
                // Wider rows store the sums beside every data vector: they and the centre's copy go a quarter page apart
                // (CacheLine.SpreadAcrossPage; a whole number of pages apart put each channel's at one page offset),
                // the sums off just above every row of x and dy and the centre (see CacheLine.PageBytes).
                Span<int> starts = stackalloc int[3];
                int first = phase > 0
                    ? CacheLine.QuarterAboveClearOf([loadedX, loadedDy], rowBytes, 2)
                    : CacheLine.QuarterAboveClearOf([loadedX, loadedDy, CacheLine.PageOffset(in m)], rowBytes, 2);
                CacheLine.SpreadAcrossPage<T>(buffer[..length], 0, channels, first, starts[..arrays]);
                scratch = buffer[starts[0]..(starts[1] + channels)];
                rotated = phase > 0 ? buffer.Slice(starts[2], channels) : default;
            }
            else
            {
                // On the stack the two sit C apart, slid clear of every row of x and dy (CacheLine.AlignAtClearOf): on
                // the Zen 4 machine, float32 [2048,256] in cache, x and dy half a page apart at 11 page offsets (one
                // process each, the two placements alternating, fastest of 15 rounds), the unslid stack array took 81, 75
                // and 75 us at three where the slid one took 69, 69 and 68; at the others the two were within 2 us
                // (66-86 us).
                int sums = (2 * channels) + CacheLine.Slack<T>() + CacheLine.SlideSlack<T>();
                rotated = phase > 0 ? CacheLine.Align(buffer[sums..length], channels) : default;
                Span<int> loaded = stackalloc int[3];
                loaded[0] = loadedX;
                loaded[1] = loadedDy;
                loaded[2] = CacheLine.PageOffset(in MemoryMarshal.GetReference(phase > 0 ? rotated : center));
                scratch = CacheLine.AlignAtClearOf(buffer[..sums], 0, 2 * channels, loaded[..(phase > 0 ? 3 : 2)], rowBytes, stored);
            }

            if (phase > 0)
            {
                center[phase..].CopyTo(rotated);
                center[..phase].CopyTo(rotated[(channels - phase)..]);
            }

            ref T m2 = ref phase > 0 ? ref MemoryMarshal.GetReference(rotated) : ref m;
            try
            {
                switch (width)
                {
                    case VectorWidth.Vector512:
                        GradientSumsChannelsLast<Vector512<T>, Vector512Ops<T>, T>(ref xs, ref gs, layout, ref m2, sumDy, sumDyCentered, scratch, prefetch, phase);
                        break;
                    case VectorWidth.Vector256:
                        GradientSumsChannelsLast<Vector256<T>, Vector256Ops<T>, T>(ref xs, ref gs, layout, ref m2, sumDy, sumDyCentered, scratch, prefetch, phase);
                        break;
                    case VectorWidth.Vector128:
                        GradientSumsChannelsLast<Vector128<T>, Vector128Ops<T>, T>(ref xs, ref gs, layout, ref m2, sumDy, sumDyCentered, scratch, prefetch, phase);
                        break;
                    default:
                        GradientSumsChannelsLast<T, ScalarOps<T>, T>(ref xs, ref gs, layout, ref m, sumDy, sumDyCentered, scratch, prefetch);
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
        else
        {
            GradientSumsChannelsFirst(x, dy, layout, 0, layout.Channels, center, sumDy, sumDyCentered, width, prefetch);
        }
    }

    /// <summary>Channel-not-last gradient sums for channels [c0, c1), each channel's runs in outer order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GradientSumsChannelsFirst<T>(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, ChannelLayout layout, int c0, int c1, ReadOnlySpan<T> center,
        Span<double> sumDy, Span<double> sumDyCentered, VectorWidth width, bool prefetch)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (HasShortRuns<T>(layout))
        {
            ShortRunGradientSums(x, dy, layout, c0, c1, center, sumDy, sumDyCentered, width, prefetch);
            return;
        }

        ref T xs = ref MemoryMarshal.GetReference(x);
        ref T gs = ref MemoryMarshal.GetReference(dy);
        ref T m = ref MemoryMarshal.GetReference(center);
        switch (width)
        {
            case VectorWidth.Vector512:
                GradientSumsChannelsFirst<Vector512<T>, Vector512Ops<T>, T>(ref xs, ref gs, layout, c0, c1, ref m, sumDy, sumDyCentered, prefetch);
                break;
            case VectorWidth.Vector256:
                GradientSumsChannelsFirst<Vector256<T>, Vector256Ops<T>, T>(ref xs, ref gs, layout, c0, c1, ref m, sumDy, sumDyCentered, prefetch);
                break;
            case VectorWidth.Vector128:
                GradientSumsChannelsFirst<Vector128<T>, Vector128Ops<T>, T>(ref xs, ref gs, layout, c0, c1, ref m, sumDy, sumDyCentered, prefetch);
                break;
            default:
                GradientSumsChannelsFirst<T, ScalarOps<T>, T>(ref xs, ref gs, layout, c0, c1, ref m, sumDy, sumDyCentered, prefetch);
                break;
        }
    }

    /// <summary>
    /// Whether the gradient sums of channels-last rows of <paramref name="channels"/> walk them two rows per update of the
    /// sums (<see cref="WideRowPairGradientSums{TVec, TOps, T}"/>, or <see cref="WidePhasedGradientSums{TVec, TOps, T}"/>
    /// when the rows share a phase): in cache (no prefetch), rows wider than four vectors of <paramref name="lanes"/> and
    /// of at most a tile of whole vectors (<see cref="TileChannels{T}"/>).
    /// </summary>
    private static bool IsPairedGradientRow<T>(int channels, int lanes, bool prefetch)
        where T : unmanaged => !prefetch && channels > 4 * lanes && channels - (channels % lanes) <= TileChannels<T>();

    /// <summary>
    /// The channels-last gradient sums of <paramref name="layout"/> block by block. With <paramref name="phase"/> above
    /// zero (the phase of x's rows, which share it), <paramref name="center"/> is the centre rotated by it
    /// (<see cref="WidePhasedGradientSums{TVec, TOps, T}"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GradientSumsChannelsLast<TVec, TOps, T>(
        ref T x, ref T dy, ChannelLayout layout, ref T center, Span<double> sumDy, Span<double> sumDyCentered, Span<T> scratch, bool prefetch,
        int phase = 0)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int channels = layout.Channels;
        int width = TOps.Count;
        if (channels < width)
        {
            GradientSumsChannelsLast<T, ScalarOps<T>, T>(ref x, ref dy, layout, ref center, sumDy, sumDyCentered, scratch, prefetch);
            return;
        }

        ref T s1 = ref MemoryMarshal.GetReference(scratch);
        ref T s2 = ref Unsafe.Add(ref s1, scratch.Length - channels); // C on from s1, or a whole number of pages
        bool narrow = channels <= 4 * width;
        int blockRows = narrow ? Math.Max(MinBlockRows, BlockElements / channels) : Math.Max(MinBlockRows, WideBlockElements / channels);
        if (!narrow && prefetch)
        {
            // Wide rows from memory are read once, so their blocks need not fit in cache. They take the length of the
            // statistics' once-read blocks (128 rows), so each channel's float sums are cleared, widened and added far
            // less often (at C = 2048 the blocks were 32 rows). Interleaved rounds, float32, against a copy:
            // [3136, 2048] 1.24-1.28x to 1.12-1.19x, [1568, 4096] 1.60x to 1.46x, [12544, 512] 1.24-1.63x to 1.17-1.60x.
            blockRows = Math.Max(blockRows, ShiftedBlockRows);
        }
        for (int r0 = 0; r0 < layout.Outer; r0 += blockRows)
        {
            int rows = Math.Min(blockRows, layout.Outer - r0);
            nuint start = (nuint)((nint)r0 * channels);
            if (narrow)
            {
                ref T xb = ref Unsafe.Add(ref x, start);
                ref T gb = ref Unsafe.Add(ref dy, start);
                switch ((channels + width - 1) / width)
                {
                    case 1:
                        NarrowGradientSums<TVec, TOps, T, OneChunk>(ref xb, ref gb, rows, channels, ref center, ref s1, ref s2);
                        break;
                    case 2:
                        NarrowGradientSums<TVec, TOps, T, TwoChunks>(ref xb, ref gb, rows, channels, ref center, ref s1, ref s2);
                        break;
                    case 3:
                        NarrowGradientSums<TVec, TOps, T, ThreeChunks>(ref xb, ref gb, rows, channels, ref center, ref s1, ref s2);
                        break;
                    default:
                        NarrowGradientSums<TVec, TOps, T, FourChunks>(ref xb, ref gb, rows, channels, ref center, ref s1, ref s2);
                        break;
                }
            }
            else if (phase > 0)
            {
                WidePhasedGradientSums<TVec, TOps, T>(ref Unsafe.Add(ref x, start), ref Unsafe.Add(ref dy, start), rows, channels, phase, ref center, ref s1, ref s2);
            }
            else if (IsPairedGradientRow<T>(channels, width, prefetch))
            {
                WideRowPairGradientSums<TVec, TOps, T>(ref Unsafe.Add(ref x, start), ref Unsafe.Add(ref dy, start), rows, channels, ref center, ref s1, ref s2);
            }
            else if (prefetch ? channels * Unsafe.SizeOf<T>() >= CacheLine.PageBytes : channels - (channels % width) > TileChannels<T>())
            {
                WideRowGroupGradientSums<TVec, TOps, T>(ref Unsafe.Add(ref x, start), ref Unsafe.Add(ref dy, start), rows, channels, ref center, ref s1, ref s2);
            }
            else
            {
                WideGradientSums<TVec, TOps, T>(ref Unsafe.Add(ref x, start), ref Unsafe.Add(ref dy, start), rows, channels, ref center, ref s1, ref s2);
            }

            // The sums rotated by the phase (channel c at c - phase, the first phase channels at the end; none when 0).
            AccumulateWidened(sumDy[phase..], ref s1);
            AccumulateWidened(sumDyCentered[phase..], ref s2);
            AccumulateWidened(sumDy[..phase], ref Unsafe.Add(ref s1, channels - phase));
            AccumulateWidened(sumDyCentered[..phase], ref Unsafe.Add(ref s2, channels - phase));
        }
    }

    /// <summary><c>total[c] += (double)block[c]</c> for every channel, vectorised (wide rows have thousands per block).</summary>
    private static void AccumulateWidened<T>(Span<double> total, ref T block)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var loop = new AccumulateLoop<T>(total, ref block);
        ChannelLoop.Run(ref loop);
    }

    /// <summary>The loop of <see cref="AccumulateWidened{T}"/>.</summary>
    private readonly ref struct AccumulateLoop<T>(Span<double> total, ref T block) : IChannelLoop
        where T : unmanaged
    {
        private readonly Span<double> _total = total;
        private readonly ref T _block = ref block;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Run<TVec, TOps>(int start)
            where TVec : struct
            where TOps : IVectorOps<TVec, double>
        {
            ref double sum = ref MemoryMarshal.GetReference(_total);
            int c = start;
            for (; c <= _total.Length - TOps.Count; c += TOps.Count)
            {
                TOps.Store(TOps.Add(TOps.Load(ref sum, (nuint)c), TOps.LoadWidened(ref _block, (nuint)c)), ref sum, (nuint)c);
            }

            return c;
        }
    }

    /// <summary>
    /// A block of rows of at most four vectors: the sums stay in registers (chunk offsets as in the narrow moments, one
    /// specialised loop per chunk count; rows of one or two chunks in pairs of rows, so the add chains do not bound it).
    /// No software prefetch, from memory either: on the Zen 4 machine, the kernel alone at the benchmarks' placement,
    /// dropping the prefetch of every row's chunks 4 KiB ahead took it from 1.17-1.46x a plain read of x and dy to
    /// 1.09-1.13x (float32 [100352, 64] 1.65-1.69 ms against 2.11-2.22 ms; [200704, 32], [401408, 16] and float64
    /// [100352, 32] from 1.24-1.25x to 1.08-1.13x). The same operations, so the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void NarrowGradientSums<TVec, TOps, T, TChunks>(ref T x, ref T dy, int rows, int channels, ref T center, ref T s1, ref T s2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TChunks : IChunkCount
    {
        int width = TOps.Count;
        int chunks = TChunks.Value;
        bool paired = chunks <= 2;
        nuint c1 = (nuint)Math.Min(width, channels - width);
        nuint c2 = (nuint)Math.Min(2 * width, channels - width);
        nuint c3 = (nuint)Math.Min(3 * width, channels - width);
        TVec m0 = TOps.Load(ref center, 0), m1 = TOps.Load(ref center, c1), m2 = TOps.Load(ref center, c2), m3 = TOps.Load(ref center, c3);

        // Paired rows: g0/g1 and h0/h1 take the even row's chunks, g2/g3 and h2/h3 the odd row's.
        TVec g0 = TOps.Zero, g1 = TOps.Zero, g2 = TOps.Zero, g3 = TOps.Zero;
        TVec h0 = TOps.Zero, h1 = TOps.Zero, h2 = TOps.Zero, h3 = TOps.Zero;
        nuint stride = (nuint)channels;
        nuint o = 0;
        int r = 0;
        for (; paired && r + 1 < rows; r += 2, o += 2 * stride)
        {
            nuint next = o + stride;
            TVec d0 = TOps.Load(ref dy, o);
            TVec e0 = TOps.Load(ref dy, next);
            g0 = TOps.Add(g0, d0);
            g2 = TOps.Add(g2, e0);
            h0 = TOps.Add(h0, TOps.Multiply(d0, TOps.Subtract(TOps.Load(ref x, o), m0)));
            h2 = TOps.Add(h2, TOps.Multiply(e0, TOps.Subtract(TOps.Load(ref x, next), m0)));
            if (chunks == 2)
            {
                TVec d1 = TOps.Load(ref dy, o + c1);
                TVec e1 = TOps.Load(ref dy, next + c1);
                g1 = TOps.Add(g1, d1);
                g3 = TOps.Add(g3, e1);
                h1 = TOps.Add(h1, TOps.Multiply(d1, TOps.Subtract(TOps.Load(ref x, o + c1), m1)));
                h3 = TOps.Add(h3, TOps.Multiply(e1, TOps.Subtract(TOps.Load(ref x, next + c1), m1)));
            }
        }

        for (; r < rows; r++, o += stride)
        {
            TVec d0 = TOps.Load(ref dy, o);
            g0 = TOps.Add(g0, d0);
            h0 = TOps.Add(h0, TOps.Multiply(d0, TOps.Subtract(TOps.Load(ref x, o), m0)));
            if (chunks > 1)
            {
                TVec d1 = TOps.Load(ref dy, o + c1);
                g1 = TOps.Add(g1, d1);
                h1 = TOps.Add(h1, TOps.Multiply(d1, TOps.Subtract(TOps.Load(ref x, o + c1), m1)));
            }

            if (chunks > 2)
            {
                TVec d2 = TOps.Load(ref dy, o + c2);
                g2 = TOps.Add(g2, d2);
                h2 = TOps.Add(h2, TOps.Multiply(d2, TOps.Subtract(TOps.Load(ref x, o + c2), m2)));
            }

            if (chunks > 3)
            {
                TVec d3 = TOps.Load(ref dy, o + c3);
                g3 = TOps.Add(g3, d3);
                h3 = TOps.Add(h3, TOps.Multiply(d3, TOps.Subtract(TOps.Load(ref x, o + c3), m3)));
            }
        }

        if (paired)
        {
            g0 = TOps.Add(g0, g2);
            g1 = TOps.Add(g1, g3);
            h0 = TOps.Add(h0, h2);
            h1 = TOps.Add(h1, h3);
        }

        // Stored from the last chunk to the first, so an overlapping offset keeps the same (identical) values either way.
        if (chunks > 3)
        {
            TOps.Store(g3, ref s1, c3);
            TOps.Store(h3, ref s2, c3);
        }

        if (chunks > 2)
        {
            TOps.Store(g2, ref s1, c2);
            TOps.Store(h2, ref s2, c2);
        }

        if (chunks > 1)
        {
            TOps.Store(g1, ref s1, c1);
            TOps.Store(h1, ref s2, c1);
        }

        TOps.Store(g0, ref s1, 0);
        TOps.Store(h0, ref s2, 0);
    }

    /// <summary>
    /// A block of wide rows in cache (<see cref="IsPairedGradientRow{T}"/>): sums in L1 arrays, two rows per update of
    /// them, <c>s += dy0</c> then <c>+= dy1</c> in registers, so each channel still takes its rows one after another: the
    /// bits of the row-by-row walk. The pair's last <c>C mod width</c> channels one by one after its vectors, the first
    /// row's before the second's; an odd last row alone. No software prefetch.
    /// </summary>
    /// <remarks>
    /// Each data vector of a row walk carries loads of the centre and both sums and two stores, and in cache that walk is
    /// bound by the loads; a pair halves them per data vector. On the Zen 4 machine (the twenty-fifth session's Intel
    /// machine had found pairs slower), the kernel alone in cache, fastest of 20 or 30 rounds, x and dy at page offsets
    /// 88 and 200 (arrays allocated one after the other) or 24 and 1040: float32 [256, 1000] 32 us against 36 us for
    /// the row walk, float64 [512, 500] 60-61 us against 67-68 us, float32 [1024, 250] 40-44 us against 41-51 us. Rows
    /// that share a phase go from it (<see cref="WidePhasedGradientSums{TVec, TOps, T}"/>).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WideRowPairGradientSums<TVec, TOps, T>(ref T x, ref T dy, int rows, int channels, ref T center, ref T s1, ref T s2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint w = (nuint)TOps.Count;
        nuint stride = (nuint)channels;
        nuint vectorEnd = stride - (stride % w);
        MemoryMarshal.CreateSpan(ref s1, channels).Clear();
        MemoryMarshal.CreateSpan(ref s2, channels).Clear();
        int r = 0;
        for (; r + 2 <= rows; r += 2)
        {
            ref T xr = ref Unsafe.Add(ref x, (nuint)r * stride);
            ref T gr = ref Unsafe.Add(ref dy, (nuint)r * stride);
            for (nuint c = 0; c < vectorEnd; c += w)
            {
                AddRowPairToGradientSums<TVec, TOps, T>(ref xr, ref gr, c, stride, ref center, ref s1, ref s2);
            }

            AddRowToGradientSums<TVec, TOps, T>(ref xr, ref gr, vectorEnd, channels, ref center, ref s1, ref s2);
            AddRowToGradientSums<TVec, TOps, T>(ref Unsafe.Add(ref xr, stride), ref Unsafe.Add(ref gr, stride), vectorEnd, channels, ref center, ref s1, ref s2);
        }

        if (r < rows)
        {
            AddRowToGradientSums<TVec, TOps, T>(ref Unsafe.Add(ref x, (nuint)r * stride), ref Unsafe.Add(ref dy, (nuint)r * stride), 0, channels, ref center, ref s1, ref s2);
        }
    }

    /// <summary>
    /// One vector of sums at <paramref name="c"/> takes two rows, the one at <paramref name="x"/> and the one
    /// <paramref name="stride"/> on: <c>s1 = (s1 + dy0) + dy1</c>, <c>s2 = (s2 + dy0 (x0 - m)) + dy1 (x1 - m)</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddRowPairToGradientSums<TVec, TOps, T>(ref T x, ref T dy, nuint c, nuint stride, ref T center, ref T s1, ref T s2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        TVec m = TOps.Load(ref center, c);
        TVec d0 = TOps.Load(ref dy, c), d1 = TOps.Load(ref dy, c + stride);
        TVec e0 = TOps.Multiply(d0, TOps.Subtract(TOps.Load(ref x, c), m));
        TVec e1 = TOps.Multiply(d1, TOps.Subtract(TOps.Load(ref x, c + stride), m));
        TOps.Store(TOps.Add(TOps.Add(TOps.Load(ref s1, c), d0), d1), ref s1, c);
        TOps.Store(TOps.Add(TOps.Add(TOps.Load(ref s2, c), e0), e1), ref s2, c);
    }

    /// <summary>
    /// <see cref="WideRowPairGradientSums{TVec, TOps, T}"/> for rows that share a phase p (C a whole number of vectors,
    /// x's rows p elements from alignment, p above zero): the block read as one run of aligned vectors from element p,
    /// each row's last vector spanning its last <c>W - p</c> channels and the next row's first p. Channel c of every such
    /// vector is at <c>(c - p) mod C</c> in <paramref name="center"/> (the centre rotated by p) and in the sums, which come
    /// out rotated the same way. The first row's first p channels go first and the last row's last <c>W - p</c> last,
    /// one by one: every channel takes the same operations, its rows in order, as in the walk from the row starts.
    /// </summary>
    /// <remarks>
    /// Managed arrays start off a line, so a walk from the row starts splits every 512-bit load of x across two lines (and
    /// those of the centre and the sums where they share x's phase). On the Zen 4 machine, the kernel alone in cache,
    /// fastest of 20 or 30 rounds, x and dy at page offsets 88 and 200 (arrays allocated one after the other), 24 and 88,
    /// 16 and 1040, or 1000 and 1000: float32 [256, 1024] 27-29 us against 30-33 us for the pairs from the row starts and
    /// 34-37 us for the row walk (a read of x and dy 21-24 us); [512, 512] 28-31 against 31-38 and 35-43; [1024, 256]
    /// 28-29 against 31-32 and 35; float64 [512, 512] 55-56 against 57-59 and 66-67.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WidePhasedGradientSums<TVec, TOps, T>(ref T x, ref T dy, int rows, int channels, int phase, ref T center, ref T s1, ref T s2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Debug.Assert(phase > 0 && phase < TOps.Count && channels % TOps.Count == 0);
        nuint w = (nuint)TOps.Count;
        nuint stride = (nuint)channels;
        nuint p = (nuint)phase;
        MemoryMarshal.CreateSpan(ref s1, channels).Clear();
        MemoryMarshal.CreateSpan(ref s2, channels).Clear();

        // The first row's first p channels, rotated to the end.
        AddElementsToGradientSums(ref x, ref dy, 0, p, stride - p, ref center, ref s1, ref s2);

        // Every row but the last has C / W vectors from its element p, the last one spanning into the next row; the last
        // row one fewer. Pairs of rows while both are whole, then the rest one at a time.
        int r = 0;
        for (; r + 2 < rows; r += 2)
        {
            ref T xr = ref Unsafe.Add(ref x, ((nuint)r * stride) + p);
            ref T gr = ref Unsafe.Add(ref dy, ((nuint)r * stride) + p);
            for (nuint c = 0; c < stride; c += w)
            {
                AddRowPairToGradientSums<TVec, TOps, T>(ref xr, ref gr, c, stride, ref center, ref s1, ref s2);
            }
        }

        for (; r < rows; r++)
        {
            nuint row = ((nuint)r * stride) + p;
            AddVectorsToGradientSums<TVec, TOps, T>(
                ref Unsafe.Add(ref x, row), ref Unsafe.Add(ref dy, row), 0, r == rows - 1 ? stride - w : stride, ref center, ref s1, ref s2);
        }

        // The last row's last W - p channels, at C - W .. C - p rotated.
        nuint last = ((nuint)(rows - 1) * stride) + stride - w + p;
        AddElementsToGradientSums(ref x, ref dy, last, w - p, stride - w, ref center, ref s1, ref s2);
    }

    /// <summary>
    /// Adds <paramref name="count"/> elements of x and dy from <paramref name="from"/> one by one to the sums from
    /// <paramref name="rotated"/> on (the same offset, or the rotated one of <see cref="WidePhasedGradientSums{TVec, TOps, T}"/>):
    /// <c>s1 += dy</c>, <c>s2 += dy (x - center)</c>, the centre read at the sums' offset.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddElementsToGradientSums<T>(ref T x, ref T dy, nuint from, nuint count, nuint rotated, ref T center, ref T s1, ref T s2)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        for (nuint i = 0; i < count; i++)
        {
            T d = Unsafe.Add(ref dy, from + i);
            nuint k = rotated + i;
            Unsafe.Add(ref s1, k) += d;
            Unsafe.Add(ref s2, k) += d * (Unsafe.Add(ref x, from + i) - Unsafe.Add(ref center, k));
        }
    }

    /// <summary>
    /// A block of wide rows from memory narrower than a page: sums in L1 arrays, one row per accumulator update, no
    /// software prefetch. Wider ones take <see cref="WideRowGroupGradientSums{TVec, TOps, T}"/>; in cache, rows of up to a
    /// tile go in pairs (<see cref="IsPairedGradientRow{T}"/>), wider ones in the groups.
    /// </summary>
    /// <remarks>
    /// In cache this walk took rows of up to a tile until the forty-eighth session (now the pairs', measured on the Zen 4
    /// machine). One row per update, not two rows added in registers first (the loop until the twenty-fifth session): on
    /// [256, 1024], where x and dy come from L3, two rows' four streams at once are slower than one row's two. Plain loops
    /// on pinned buffers, float32, ABBA, fastest of 16 rounds against a copy: a read of x and dy 0.93-1.05x, one row per
    /// update 1.01-1.18x, two rows 1.16-1.24x, and the two rows' loads alone, with no accumulators, 1.25-1.32x. The
    /// layer's backward, builds alternating in one process (two runs, one in each order), time over the two-row time:
    /// [256, 1024] 0.967-0.983, [512, 512] 0.973-0.999, [384, 768] 0.977, [1024, 1024] 0.956-0.978, float64 [256, 512]
    /// 0.964-0.974; rows of 1 KiB or less within the noise ([1024, 256] 0.999-1.017, [2048, 128] 0.982-1.018, float64
    /// [512, 256] 0.998). The sums' last bits move (in 96-99% of the channels of [256, 1024] and [1024, 256]); dx came out
    /// bitwise equal between the builds on every shape timed.
    /// <para>
    /// From memory it replaced, in the forty-sixth session, a walk that kept the centre and both sums interleaved vector
    /// by vector and went a tile of channels at a time down sub-blocks of about 64 KiB of each stream while prefetching
    /// the next (the twenty-fourth to forty-fifth sessions'; on the Intel machine with its 48 KiB L1 it had beaten whole
    /// rows prefetched 4 KiB ahead). The same additions, so the same bits. On the Zen 4 machine (32 KiB L1), from memory
    /// at 256 bits, fastest of 15 rounds, at the benchmarks' placement and far apart, a scratch copy of this walk took
    /// 0.78-0.98 of the interleaved kernel's time: float64 [100352, 64] 4.42-4.61 ms against 4.73-5.54, [50176, 128] 4.14
    /// against 4.76, [25088, 256] 4.32-4.77 against 5.09-5.13; float32 [12544, 512] 2.09-2.25 against 2.61-2.70,
    /// [50176, 128] 2.06-2.31 against 2.36-2.64 (a read of x and dy 1.7-4.4 ms). The layer's float64 [32, 56, 56, 64]
    /// backward went from 1.08-1.22 of its traffic floor to 1.06-1.08 (harness, builds alternating).
    /// </para>
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WideGradientSums<TVec, TOps, T>(ref T x, ref T dy, int rows, int channels, ref T center, ref T s1, ref T s2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint stride = (nuint)channels;
        MemoryMarshal.CreateSpan(ref s1, channels).Clear();
        MemoryMarshal.CreateSpan(ref s2, channels).Clear();
        for (int r = 0; r < rows; r++)
        {
            AddRowToGradientSums<TVec, TOps, T>(ref Unsafe.Add(ref x, (nuint)r * stride), ref Unsafe.Add(ref dy, (nuint)r * stride), 0, channels, ref center, ref s1, ref s2);
        }
    }

    /// <summary>
    /// Adds one channels-last row to the block's sums: <c>s1 += dy</c>, <c>s2 += dy (x - center)</c>, the vectors of
    /// channels from <paramref name="from"/> (0, or the end of the vectors to add only the rest) to the last whole one,
    /// then the last <c>C mod width</c> channels one by one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddRowToGradientSums<TVec, TOps, T>(ref T x, ref T dy, nuint from, int channels, ref T center, ref T s1, ref T s2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint vectorEnd = (nuint)(channels - (channels % TOps.Count));
        nuint c = Math.Max(from, vectorEnd);
        AddVectorsToGradientSums<TVec, TOps, T>(ref x, ref dy, from, vectorEnd, ref center, ref s1, ref s2);
        AddElementsToGradientSums(ref x, ref dy, c, (nuint)channels - c, c, ref center, ref s1, ref s2);
    }

    /// <summary>
    /// The vectors of one row from <paramref name="from"/> up to <paramref name="end"/> (a whole number of vectors on)
    /// added to the sums at the same offsets: <c>s1 += dy</c>, <c>s2 += dy (x - center)</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddVectorsToGradientSums<TVec, TOps, T>(ref T x, ref T dy, nuint from, nuint end, ref T center, ref T s1, ref T s2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        for (nuint c = from; c < end; c += (nuint)TOps.Count)
        {
            TVec d = TOps.Load(ref dy, c);
            TOps.Store(TOps.Add(TOps.Load(ref s1, c), d), ref s1, c);
            TOps.Store(TOps.Add(TOps.Load(ref s2, c), TOps.Multiply(d, TOps.Subtract(TOps.Load(ref x, c), TOps.Load(ref center, c)))), ref s2, c);
        }
    }

    /// <summary>
    /// A block of rows of a page or more from memory: whole rows, <see cref="GradientRowGroup"/> consecutive rows at a
    /// time side by side, a vector of channels at a time, so that each sum is loaded and stored once per group and takes
    /// the group's additions in registers, in row order: the additions of <see cref="WideGradientSums{TVec, TOps, T}"/>,
    /// so the same bits. No software prefetch: the hardware follows the group's eight streams. The grouped rows' last
    /// C mod width channels go one by one after their vectors, and the rows left over (fewer than a group) whole
    /// (<see cref="AddRowToGradientSums{TVec, TOps, T}"/>).
    /// </summary>
    /// <remarks>
    /// On the Zen 4 machine (32 KiB L1), the kernel alone from memory, fastest of 15 rounds, x and dy 168 and 56 bytes
    /// below a third buffer's page offset (the benchmarks' placement) or far apart, against the interleaved walk at 256
    /// bits: float32 [3136, 2048] 2.08-2.89 ms against 2.60-3.16 ms (a read of x and dy 1.65-1.99 ms), float64
    /// [3136, 2048] 4.45-5.42 against 5.85-6.44, float32 [1568, 4096] 2.00 against 2.80, float64 [6272, 512] 2.18-2.67
    /// against 2.70-3.08. At 256 bits it took 4-13% longer than at 512; one row per update 1.3-1.6x as long, two rows
    /// 1.1-1.3x, eight 1.1-1.2x. Narrower rows lost: float32 [12544, 512] 3.79 ms against 2.84, float64 [100352, 64]
    /// 8.66 against 4.97. In cache it replaced a walk of 4 KiB tiles of channels down the block's rows, each row's tile
    /// prefetched one row ahead, for rows wider than a tile (fastest of 15 rounds, two placements): float32 [128, 2048]
    /// 41-42 us against 44-61 us, [64, 4096] 39-41 against 41-55, [256, 2048] 71 against 105-140, float64 [256, 1024]
    /// 72-82 against 89-135 (a read of x and dy 64-68 us). The layer's float64 [256, 1024] backward went from 4.38-4.66x a
    /// copy to 3.79-4.26x (harness, builds alternating). Rows of at most a tile keep the row walk: float64 [512, 512]
    /// took 86-98 us in groups against 68-76 us.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WideRowGroupGradientSums<TVec, TOps, T>(ref T x, ref T dy, int rows, int channels, ref T center, ref T s1, ref T s2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint w = (nuint)TOps.Count;
        nuint vectorEnd = (nuint)(channels - (channels % TOps.Count));
        nuint stride = (nuint)channels;
        MemoryMarshal.CreateSpan(ref s1, channels).Clear();
        MemoryMarshal.CreateSpan(ref s2, channels).Clear();
        int r = 0;
        for (; r + GradientRowGroup <= rows; r += GradientRowGroup)
        {
            ref T xr = ref Unsafe.Add(ref x, (nuint)r * stride);
            ref T gr = ref Unsafe.Add(ref dy, (nuint)r * stride);
            nuint o1 = stride, o2 = 2 * stride, o3 = 3 * stride;
            for (nuint c = 0; c < vectorEnd; c += w)
            {
                TVec m = TOps.Load(ref center, c);
                TVec d0 = TOps.Load(ref gr, c), d1 = TOps.Load(ref gr, c + o1), d2 = TOps.Load(ref gr, c + o2), d3 = TOps.Load(ref gr, c + o3);
                TVec e0 = TOps.Multiply(d0, TOps.Subtract(TOps.Load(ref xr, c), m));
                TVec e1 = TOps.Multiply(d1, TOps.Subtract(TOps.Load(ref xr, c + o1), m));
                TVec e2 = TOps.Multiply(d2, TOps.Subtract(TOps.Load(ref xr, c + o2), m));
                TVec e3 = TOps.Multiply(d3, TOps.Subtract(TOps.Load(ref xr, c + o3), m));
                TOps.Store(TOps.Add(TOps.Add(TOps.Add(TOps.Add(TOps.Load(ref s1, c), d0), d1), d2), d3), ref s1, c);
                TOps.Store(TOps.Add(TOps.Add(TOps.Add(TOps.Add(TOps.Load(ref s2, c), e0), e1), e2), e3), ref s2, c);
            }
        }

        // The grouped rows' last C mod width channels, then the rows left over whole: each channel still in row order.
        for (int g = 0; g < r && vectorEnd < stride; g++)
        {
            AddRowToGradientSums<TVec, TOps, T>(ref Unsafe.Add(ref x, (nuint)g * stride), ref Unsafe.Add(ref dy, (nuint)g * stride), vectorEnd, channels, ref center, ref s1, ref s2);
        }

        for (; r < rows; r++)
        {
            AddRowToGradientSums<TVec, TOps, T>(ref Unsafe.Add(ref x, (nuint)r * stride), ref Unsafe.Add(ref dy, (nuint)r * stride), 0, channels, ref center, ref s1, ref s2);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GradientSumsChannelsFirst<TVec, TOps, T>(
        ref T x, ref T dy, ChannelLayout layout, int c0, int c1, ref T center, Span<double> sumDy, Span<double> sumDyCentered, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        // In memory order; each channel's blocks are still added in outer order (the bits do not depend on it). From
        // memory channel c goes beside channel c + ceil((c1 - c0) / 2), the middle one of an odd count alone: two streams
        // of each tensor read faster than one.
        int inner = layout.Inner;
        int half = prefetch ? (c1 - c0) / 2 : 0;
        int paired = c0 + half;
        for (int o = 0; o < layout.Outer; o++)
        {
            for (int c = c0; c < paired; c++)
            {
                int e = c + (c1 - paired);
                nint runC = ((nint)o * layout.Channels + c) * inner, runE = ((nint)o * layout.Channels + e) * inner;
                T mc = Unsafe.Add(ref center, c), me = Unsafe.Add(ref center, e);
                for (int j0 = 0; j0 < inner; j0 += BlockElements)
                {
                    int count = Math.Min(BlockElements, inner - j0);
                    RunBlockGradientSumsPair<TVec, TOps, T>(
                        ref Unsafe.Add(ref x, runC + j0), ref Unsafe.Add(ref dy, runC + j0), mc,
                        ref Unsafe.Add(ref x, runE + j0), ref Unsafe.Add(ref dy, runE + j0), me,
                        count, out double c1Sum, out double c2Sum, out double e1Sum, out double e2Sum);
                    sumDy[c] += c1Sum;
                    sumDyCentered[c] += c2Sum;
                    sumDy[e] += e1Sum;
                    sumDyCentered[e] += e2Sum;
                }
            }

            for (int c = paired; c < c1 - half; c++)
            {
                nint runStart = ((nint)o * layout.Channels + c) * inner;
                T m = Unsafe.Add(ref center, c);
                for (int j0 = 0; j0 < inner; j0 += BlockElements)
                {
                    int count = Math.Min(BlockElements, inner - j0);
                    double d1 = RunBlockGradientSums<TVec, TOps, T>(
                        ref Unsafe.Add(ref x, runStart + j0), ref Unsafe.Add(ref dy, runStart + j0), m, count, prefetch, out double d2);
                    sumDy[c] += d1;
                    sumDyCentered[c] += d2;
                }
            }
        }
    }

    /// <summary>
    /// <c>sum(dy)</c> (returned) and <c>sum(dy (x - m))</c> over one block of a channels-first run, with
    /// <see cref="GradientAccumulators{TVec, TOps, T}"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double RunBlockGradientSums<TVec, TOps, T>(ref T x, ref T dy, T m, int count, bool prefetch, out double sum2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        var sums = new GradientAccumulators<TVec, TOps, T>(m);
        int j = 0;
        for (; j <= count - (2 * width); j += 2 * width)
        {
            if (prefetch)
            {
                Prefetch.PairAhead(ref dy, (nuint)j);
                Prefetch.PairAhead(ref x, (nuint)j);
            }

            sums.AddTwo(ref x, ref dy, (nuint)j);
        }

        for (; j <= count - width; j += width)
        {
            sums.AddOne(ref x, ref dy, (nuint)j);
        }

        return sums.Finish(ref x, ref dy, j, count, out sum2);
    }

    /// <summary>
    /// <see cref="RunBlockGradientSums"/> over the same block of two runs (channel c's x, dy and centre, then channel e's)
    /// in one loop, both prefetched, each with its own <see cref="GradientAccumulators{TVec, TOps, T}"/>: the operations,
    /// and so the bits, each run gets alone.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RunBlockGradientSumsPair<TVec, TOps, T>(
        ref T xc, ref T gc, T mc, ref T xe, ref T ge, T me, int count, out double c1, out double c2, out double e1, out double e2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        var sc = new GradientAccumulators<TVec, TOps, T>(mc);
        var se = new GradientAccumulators<TVec, TOps, T>(me);
        int j = 0;
        for (; j <= count - (2 * width); j += 2 * width)
        {
            Prefetch.PairAhead(ref gc, (nuint)j);
            Prefetch.PairAhead(ref xc, (nuint)j);
            Prefetch.PairAhead(ref ge, (nuint)j);
            Prefetch.PairAhead(ref xe, (nuint)j);
            sc.AddTwo(ref xc, ref gc, (nuint)j);
            se.AddTwo(ref xe, ref ge, (nuint)j);
        }

        for (; j <= count - width; j += width)
        {
            sc.AddOne(ref xc, ref gc, (nuint)j);
            se.AddOne(ref xe, ref ge, (nuint)j);
        }

        c1 = sc.Finish(ref xc, ref gc, j, count, out c2);
        e1 = se.Finish(ref xe, ref ge, j, count, out e2);
    }

    /// <summary>
    /// The accumulators of the channels-first gradient sums over one run around centre m: two pairs, <c>sum(dy)</c> and
    /// <c>sum(dy (x - m))</c> for the even and the odd vector of each two (add latency, not throughput, was the limit).
    /// </summary>
    /// <remarks>Constructors written out, as in <see cref="ShiftedAccumulators{TVec, TOps, T}"/>: a primary constructor was not inlined.</remarks>
    private struct GradientAccumulators<TVec, TOps, T>
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        private readonly T _center;
        private readonly TVec _m;
        private TVec _a1, _a2, _b1, _b2;

        /// <summary>Accumulators around centre <paramref name="m"/>, all zero.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GradientAccumulators(T m)
        {
            _center = m;
            _m = TOps.Broadcast(m);
            _a1 = _a2 = _b1 = _b2 = TOps.Zero;
        }

        /// <summary>Accumulators around centre <paramref name="m"/> that resume from the four vectors saved at <paramref name="state"/> (<see cref="Save"/>).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GradientAccumulators(T m, ref T state)
        {
            _center = m;
            _m = TOps.Broadcast(m);
            nuint w = (nuint)TOps.Count;
            _a1 = TOps.Load(ref state, 0);
            _b1 = TOps.Load(ref state, w);
            _a2 = TOps.Load(ref state, 2 * w);
            _b2 = TOps.Load(ref state, 3 * w);
        }

        /// <summary>The centre.</summary>
        public readonly T Center => _center;

        /// <summary>Saves the four accumulators at <paramref name="state"/>, for a later <see cref="GradientAccumulators{TVec, TOps, T}(T, ref T)"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Save(ref T state)
        {
            nuint w = (nuint)TOps.Count;
            TOps.Store(_a1, ref state, 0);
            TOps.Store(_b1, ref state, w);
            TOps.Store(_a2, ref state, 2 * w);
            TOps.Store(_b2, ref state, 3 * w);
        }

        /// <summary>Both sums of the vectors alone in double, the pairs added and reduced (the first lines of <see cref="Finish"/>).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly double Reduce(out double sum2)
        {
            sum2 = TOps.SumToDouble(TOps.Add(_a2, _b2));
            return TOps.SumToDouble(TOps.Add(_a1, _b1));
        }

        /// <summary>
        /// Adds the vector at element <paramref name="j"/> (to the even pair) without its lanes in <paramref name="drop"/>:
        /// a run's last elements, in the vector that ends with it.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void AddLast(ref T x, ref T dy, nuint j, TVec drop)
        {
            TVec g = TOps.Select(drop, TOps.Zero, TOps.Load(ref dy, j));
            _a1 = TOps.Add(_a1, g);
            _a2 = TOps.Add(_a2, TOps.Multiply(g, TOps.Subtract(TOps.Load(ref x, j), _m)));
        }

        /// <summary>Adds the two vectors at element <paramref name="j"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void AddTwo(ref T x, ref T dy, nuint j)
        {
            nuint k = j + (nuint)TOps.Count;
            TVec g = TOps.Load(ref dy, j);
            TVec h = TOps.Load(ref dy, k);
            _a1 = TOps.Add(_a1, g);
            _b1 = TOps.Add(_b1, h);
            _a2 = TOps.Add(_a2, TOps.Multiply(g, TOps.Subtract(TOps.Load(ref x, j), _m)));
            _b2 = TOps.Add(_b2, TOps.Multiply(h, TOps.Subtract(TOps.Load(ref x, k), _m)));
        }

        /// <summary>Adds the vector at element <paramref name="j"/> (to the even pair).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void AddOne(ref T x, ref T dy, nuint j)
        {
            TVec g = TOps.Load(ref dy, j);
            _a1 = TOps.Add(_a1, g);
            _a2 = TOps.Add(_a2, TOps.Multiply(g, TOps.Subtract(TOps.Load(ref x, j), _m)));
        }

        /// <summary>Both sums in double: the pairs added and reduced, then elements <paramref name="j"/> to <paramref name="count"/> - 1 one by one.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly double Finish(ref T x, ref T dy, int j, int count, out double sum2)
        {
            double sum1 = TOps.SumToDouble(TOps.Add(_a1, _b1));
            sum2 = TOps.SumToDouble(TOps.Add(_a2, _b2));
            for (; j < count; j++)
            {
                double g = double.CreateTruncating(Unsafe.Add(ref dy, j));
                sum1 += g;
                sum2 += g * double.CreateTruncating(Unsafe.Add(ref x, j) - _center);
            }

            return sum1;
        }
    }

    /// <summary>
    /// The input gradient: <c>dx = dy * a[c] + w * ((x - center[c]) * p[c] + q[c])</c>, where <c>w</c> is the mask weight of
    /// the position (1 without a mask, 0 where masked out: a masked position does not move the statistics).
    /// <paramref name="weights"/> is empty (no mask) or one 0/1 value per position of the input without its channel axis,
    /// i.e. <c>[Outer, Inner]</c>. <paramref name="dx"/> may be <paramref name="dy"/> (in place).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void InputGradient<T>(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dx, ChannelLayout layout, ReadOnlySpan<T> weights,
        ReadOnlySpan<T> center, ReadOnlySpan<T> a, ReadOnlySpan<T> p, ReadOnlySpan<T> q, VectorWidth width, int maxDegree = 1, bool? stream = null)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Debug.Assert(x.Length == layout.Length && dy.Length == layout.Length && dx.Length == layout.Length);
        Debug.Assert(weights.IsEmpty || weights.Length == layout.Outer * layout.Inner);
        ChannelFold fold = weights.IsEmpty ? ChannelFold.For<T>(layout, width) : default;
        if (fold.IsFolded)
        {
            // Few channels, no mask (a super-row would straddle k weights): as the affine pass, the folded rows with
            // the coefficients repeated, then the remaining rows as they are.
            Span<T> scratch = stackalloc T[4 * fold.Folded.Channels];
            int split = fold.FoldedLength;
            InputGradient<T>(
                x[..split], dy[..split], dx[..split], fold.Folded, default, fold.Repeat(center, scratch, 0), fold.Repeat(a, scratch, 1),
                fold.Repeat(p, scratch, 2), fold.Repeat(q, scratch, 3), width, maxDegree, stream);
            if (fold.Tail.Outer != 0)
            {
                InputGradient<T>(x[split..], dy[split..], dx[split..], fold.Tail, default, center, a, p, q, width, 1, stream: false);
            }

            return;
        }

        bool prefetch = Prefetch.IsWorthIt<T>(layout.Length, Prefetch.BackwardTensors);
        bool streaming = stream ?? NonTemporal.IsWorthIt<T>(layout.Length);
        if (maxDegree != 1 && Partition.IsLarge(layout))
        {
            ParallelInputGradient(x, dy, dx, layout, weights, center, a, p, q, width, maxDegree, prefetch, streaming);
            return;
        }

        InputGradientSequential(x, dy, dx, layout, weights, center, a, p, q, width, prefetch, streaming);
    }

    /// <summary>The parallel branch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ParallelInputGradient<T>(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dx, ChannelLayout layout, ReadOnlySpan<T> weights,
        ReadOnlySpan<T> center, ReadOnlySpan<T> a, ReadOnlySpan<T> p, ReadOnlySpan<T> q, VectorWidth width, int maxDegree, bool prefetch, bool stream)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        fixed (T* px = x)
        fixed (T* pg = dy)
        fixed (T* pd = dx)
        fixed (T* pw = weights)
        fixed (T* pm = center)
        fixed (T* pa = a)
        fixed (T* pp = p)
        fixed (T* pq = q)
        {
            Partition.ForElementwise(layout, maxDegree, new InputGradientParts<T>(px, pg, pd, weights.IsEmpty ? null : pw, pm, pa, pp, pq, width, prefetch, stream));
        }
    }

    /// <summary>One part of <see cref="ParallelInputGradient{T}"/> (the buffers are pinned by the caller; no mask when <paramref name="weights"/> is null).</summary>
    private readonly unsafe struct InputGradientParts<T>(T* x, T* dy, T* dx, T* weights, T* center, T* a, T* p, T* q, VectorWidth width, bool prefetch, bool stream) : IElementwiseBody
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(ChannelLayout part, nint element, int channel, nint maskStart) => InputGradientSequential(
            new ReadOnlySpan<T>(x + element, part.Length), new ReadOnlySpan<T>(dy + element, part.Length),
            new Span<T>(dx + element, part.Length), part,
            weights is null ? default : new ReadOnlySpan<T>(weights + maskStart, part.Outer * part.Inner),
            new ReadOnlySpan<T>(center + channel, part.Channels), new ReadOnlySpan<T>(a + channel, part.Channels),
            new ReadOnlySpan<T>(p + channel, part.Channels), new ReadOnlySpan<T>(q + channel, part.Channels), width, prefetch, stream);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientSequential<T>(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dx, ChannelLayout layout, ReadOnlySpan<T> weights,
        ReadOnlySpan<T> center, ReadOnlySpan<T> a, ReadOnlySpan<T> p, ReadOnlySpan<T> q, VectorWidth width, bool prefetch, bool stream)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var k = new GradientCoefficients<T>(
            ref MemoryMarshal.GetReference(center), ref MemoryMarshal.GetReference(a),
            ref MemoryMarshal.GetReference(p), ref MemoryMarshal.GetReference(q));
        ref T xs = ref MemoryMarshal.GetReference(x);
        ref T gs = ref MemoryMarshal.GetReference(dy);
        ref T ds = ref MemoryMarshal.GetReference(dx);
        switch (width)
        {
            case VectorWidth.Vector512:
                InputGradient<Vector512<T>, Vector512Ops<T>, T>(ref xs, ref gs, ref ds, layout, weights, k, prefetch, stream);
                break;
            case VectorWidth.Vector256:
                InputGradient<Vector256<T>, Vector256Ops<T>, T>(ref xs, ref gs, ref ds, layout, weights, k, prefetch, stream);
                break;
            case VectorWidth.Vector128:
                InputGradient<Vector128<T>, Vector128Ops<T>, T>(ref xs, ref gs, ref ds, layout, weights, k, prefetch, stream);
                break;
            default:
                InputGradient<T, ScalarOps<T>, T>(ref xs, ref gs, ref ds, layout, weights, k, prefetch, stream);
                break;
        }
    }

    /// <summary>References to the four per-channel coefficient arrays of <see cref="InputGradient{T}"/>.</summary>
    private readonly ref struct GradientCoefficients<T>
    {
        public readonly ref T Center;
        public readonly ref T A;
        public readonly ref T P;
        public readonly ref T Q;

        public GradientCoefficients(ref T center, ref T a, ref T p, ref T q)
        {
            Center = ref center;
            A = ref a;
            P = ref p;
            Q = ref q;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradient<TVec, TOps, T>(
        ref T x, ref T dy, ref T dx, ChannelLayout layout, ReadOnlySpan<T> weights, GradientCoefficients<T> k, bool prefetch, bool stream)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (stream && TOps.CanStream && InputGradientStreaming<TVec, TOps, T>(ref x, ref dy, ref dx, layout, weights, k, prefetch))
        {
            return;
        }

        int width = TOps.Count;
        int channels = layout.Channels;
        if (layout.IsChannelsLast)
        {
            if (channels < width)
            {
                InputGradient<T, ScalarOps<T>, T>(ref x, ref dy, ref dx, layout, weights, k, prefetch, stream: false);
                return;
            }

            InputGradientRows<TVec, TOps, T, SwitchOff>(ref x, ref dy, ref dx, layout.Outer, channels, weights, k, prefetch);
        }
        else
        {
            int inner = layout.Inner;
            if (inner < width)
            {
                InputGradient<T, ScalarOps<T>, T>(ref x, ref dy, ref dx, layout, weights, k, prefetch, stream: false);
                return;
            }

            // In cache the runs, one contiguous stream, walk from the end when dx's page offset lies just above x's and
            // dy's; from memory their prefetches lead upward. Zen 4, as above: float32 [16,64,32,32] 3.26-3.38x a copy
            // against 4.10-4.45x, [8,128,16,16] 4.77-5.23x against 5.24-5.87x.
            ref T w = ref MemoryMarshal.GetReference(weights);
            bool down = !prefetch && CacheLine.WalkDown(in dx, in x, in dy, 0);
            for (int oo = 0; oo < layout.Outer; oo++)
            {
                int o = down ? layout.Outer - 1 - oo : oo;
                for (int cc = 0; cc < channels; cc++)
                {
                    int c = down ? channels - 1 - cc : cc;
                    nint start = ((nint)o * channels + c) * inner;
                    InputGradientRun<TVec, TOps, T>(
                        ref Unsafe.Add(ref x, start), ref Unsafe.Add(ref dy, start), ref Unsafe.Add(ref dx, start), inner,
                        TOps.Broadcast(Unsafe.Add(ref k.Center, c)), TOps.Broadcast(Unsafe.Add(ref k.A, c)),
                        TOps.Broadcast(Unsafe.Add(ref k.P, c)), TOps.Broadcast(Unsafe.Add(ref k.Q, c)),
                        weights.IsEmpty, ref Unsafe.Add(ref w, (nint)o * inner), prefetch, down);
                }
            }
        }
    }

    /// <summary>
    /// The input gradient with streaming stores (<see cref="NonTemporal"/>), for outputs too large for the caches. Every
    /// vector store must be aligned and no element may be written twice (dx may be dy), so:
    /// <list type="bullet">
    /// <item>channels last, with C a multiple of the width: the rows are taken to start <c>h</c> elements later, where
    /// <c>h</c> is the distance of dx from alignment, so that every shifted row starts aligned; the row kernels run on the
    /// shifted rows with coefficients rotated by <c>h</c> (read from copies extended past the last channel), and the first
    /// <c>h</c> and last <c>C - h</c> elements go through the scalar map (the same operations, so the same bits). With a
    /// mask a shifted row would straddle two weights, so a masked pass streams only when <c>h = 0</c>;</item>
    /// <item>channels first: each run is stored aligned from its first aligned element, its ends one by one.</item>
    /// </list>
    /// Returns false, having written nothing, in every other case (the caller then stores plainly).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe bool InputGradientStreaming<TVec, TOps, T>(
        ref T x, ref T dy, ref T dx, ChannelLayout layout, ReadOnlySpan<T> weights, GradientCoefficients<T> k, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        int channels = layout.Channels;
        if (layout.IsChannelsLast ? channels < width || channels % width != 0 : layout.Inner < width)
        {
            return false;
        }

        // Pinned: the alignment found here must hold until the last store.
        fixed (T* output = &dx)
        {
            int head = NonTemporal.ElementsToAlignment<T>(output, width * sizeof(T));
            if (head < 0 || (head != 0 && layout.IsChannelsLast && !weights.IsEmpty))
            {
                return false;
            }

            if (!layout.IsChannelsLast && weights.IsEmpty && HasShortRuns<T>(layout))
            {
                InputGradientShortRunsStreaming<TVec, TOps, T>(ref x, ref dy, ref dx, layout, k, head, prefetch);
            }
            else if (!layout.IsChannelsLast)
            {
                InputGradientRunsStreaming<TVec, TOps, T>(ref x, ref dy, ref dx, layout, weights, k, prefetch);
            }
            else if (head == 0)
            {
                InputGradientRows<TVec, TOps, T, SwitchOn>(ref x, ref dy, ref dx, layout.Outer, channels, weights, k, prefetch);
            }
            else
            {
                InputGradientShiftedRowsStreaming<TVec, TOps, T>(ref x, ref dy, ref dx, layout.Outer, channels, head, k, prefetch);
            }
        }

        NonTemporal.Fence();
        return true;
    }

    /// <summary>
    /// Channels-last rows (channels &gt;= width): rows of up to four vectors keep their coefficients in registers, wider
    /// ones go through <see cref="InputGradientWideRows{TVec, TOps, T, TStream}"/>. With <typeparamref name="TStream"/>
    /// on, every store is a streaming one, so the rows must start aligned and C be a multiple of the width.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientRows<TVec, TOps, T, TStream>(
        ref T x, ref T dy, ref T dx, int rows, int channels, ReadOnlySpan<T> weights, GradientCoefficients<T> k, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TStream : ISwitch
    {
        int width = TOps.Count;
        int chunks = channels <= 4 * width ? (channels + width - 1) / width : 0;
        bool down = false;
        if (chunks != 0 && !prefetch && !TStream.On)
        {
            // In cache, narrow rows walk from the last when dx's page offset lies just above x's and dy's: each input
            // row against output rows i, i - 1 and i + 1. On the Zen 4 machine, arrays allocated one after the other,
            // the two walks alternating in one process: float32 [16384,16] 2.48x a copy against 2.80-2.99x, [8192,48]
            // 2.53-2.54x against 2.74-2.82x.
            down = CacheLine.WalkDown(in dx, in x, in dy, channels * Unsafe.SizeOf<T>());
        }

        switch (chunks)
        {
            case 1:
                InputGradientNarrowRows<TVec, TOps, T, OneChunk, TStream>(ref x, ref dy, ref dx, rows, channels, weights, k, down);
                break;
            case 2:
                InputGradientNarrowRows<TVec, TOps, T, TwoChunks, TStream>(ref x, ref dy, ref dx, rows, channels, weights, k, down);
                break;
            case 3:
                InputGradientNarrowRows<TVec, TOps, T, ThreeChunks, TStream>(ref x, ref dy, ref dx, rows, channels, weights, k, down);
                break;
            case 4:
                InputGradientNarrowRows<TVec, TOps, T, FourChunks, TStream>(ref x, ref dy, ref dx, rows, channels, weights, k, down);
                break;
            default:
                InputGradientWideRows<TVec, TOps, T, TStream>(ref x, ref dy, ref dx, rows, channels, weights, k, prefetch);
                break;
        }
    }

    /// <summary>
    /// Unmasked channels-last rows whose output starts <paramref name="head"/> elements before alignment: see
    /// <see cref="InputGradientStreaming{TVec, TOps, T}"/>. The rotated copies are placed so that their element
    /// <paramref name="head"/>, where the shifted rows' coefficients start, begins a 64-byte line: every coefficient load
    /// is then one line. Measured against the copies where the pool put them (builds alternating in ABBA order, sixteenth
    /// session), the layer's backward moved by no more than the noise: float32 [25088,256] 0.96 of its time, double
    /// [3136,1024] 1.05, float32 [3136,2048] 1.00.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientShiftedRowsStreaming<TVec, TOps, T>(
        ref T x, ref T dy, ref T dx, int rows, int channels, int head, GradientCoefficients<T> k, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int extended = channels + TOps.Count;
        int stride = CacheLine.RoundUp<T>(extended);
        int bufferLength = (4 * stride) + CacheLine.Slack<T>();
        T[]? rented = null;
        Span<T> buffer = channels <= StackChannels
            ? stackalloc T[bufferLength]
            : (rented = ArrayPool<T>.Shared.Rent(bufferLength));
        Span<T> rotated = CacheLine.AlignAt(buffer, head, 4 * stride);
        try
        {
            ref T m = ref MemoryMarshal.GetReference(rotated);
            ref T a = ref Unsafe.Add(ref m, stride);
            ref T p = ref Unsafe.Add(ref a, stride);
            ref T q = ref Unsafe.Add(ref p, stride);
            ExtendPastLastChannel(ref k.Center, channels, ref m, extended);
            ExtendPastLastChannel(ref k.A, channels, ref a, extended);
            ExtendPastLastChannel(ref k.P, channels, ref p, extended);
            ExtendPastLastChannel(ref k.Q, channels, ref q, extended);

            for (nuint c = 0; c < (nuint)head; c++)
            {
                Unsafe.Add(ref dx, c) = GradientAt<T, ScalarOps<T>, T>(ref x, ref dy, c, k, statisticsTerm: true);
            }

            var shifted = new GradientCoefficients<T>(ref Unsafe.Add(ref m, head), ref Unsafe.Add(ref a, head), ref Unsafe.Add(ref p, head), ref Unsafe.Add(ref q, head));
            InputGradientRows<TVec, TOps, T, SwitchOn>(
                ref Unsafe.Add(ref x, head), ref Unsafe.Add(ref dy, head), ref Unsafe.Add(ref dx, head), rows - 1, channels, default, shifted, prefetch);

            nint lastRow = (nint)(rows - 1) * channels;
            for (nuint c = (nuint)head; c < (nuint)channels; c++)
            {
                Unsafe.Add(ref dx, lastRow + (nint)c) = GradientAt<T, ScalarOps<T>, T>(
                    ref Unsafe.Add(ref x, lastRow), ref Unsafe.Add(ref dy, lastRow), c, k, statisticsTerm: true);
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

    /// <summary>
    /// Channels-first runs shorter than <see cref="ShortRunBytes"/> (at least a vector), no mask, with streaming stores:
    /// the whole tensor as one stream of aligned vectors of dx from element <paramref name="head"/> (the elements before
    /// it, and after the last whole vector, one by one). A vector that straddles two runs takes each lane's coefficients
    /// from its own run's channel (a select by <see cref="IVectorOps{TVec, T}.LanesBelow"/>), so every element gets the
    /// operations, and the bits, of <see cref="RunGradient"/> with its channel's coefficients. Run by run
    /// (<see cref="InputGradientRunsStreaming"/>), a 49-element run of a 7x7 map took up to 15 elements one by one at each
    /// end and two or three vectors between: float32 [256, 512, 7, 7] took 11-13x a copy for the backward.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientShortRunsStreaming<TVec, TOps, T>(
        ref T x, ref T dy, ref T dx, ChannelLayout layout, GradientCoefficients<T> k, int head, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        int inner = layout.Inner;
        int channels = layout.Channels;
        nint length = layout.Length;
        ref T none = ref Unsafe.NullRef<T>();
        nint i = Math.Min(head, length);
        for (nint e = 0; e < i; e++)
        {
            InputGradientElement(ref x, ref dy, ref dx, e, (int)(e / inner % channels), k);
        }

        var runs = new RunCursor(i, inner, channels);
        RunCoefficients<TVec, TOps, T> current = new(k, runs.Channel), next = new(k, runs.Next);
        for (; i <= length - width; i += width)
        {
            if (prefetch)
            {
                Prefetch.PairAhead(ref x, (nuint)i);
                Prefetch.PairAhead(ref dy, (nuint)i);
            }

            nint inRun = runs.InRun(i);
            RunCoefficients<TVec, TOps, T> lanes = inRun < width ? RunCoefficients<TVec, TOps, T>.Select(TOps.LanesBelow((int)inRun), current, next) : current;
            TOps.StoreStreaming(RunGradient<TVec, TOps, T>(ref x, ref dy, (nuint)i, lanes.Center, lanes.A, lanes.P, lanes.Q, true, ref none), ref dx, (nuint)i);
            if (inRun <= width)
            {
                runs.Advance();
                current = next;
                next = new RunCoefficients<TVec, TOps, T>(k, runs.Next);
            }
        }

        for (; i < length; i++)
        {
            InputGradientElement(ref x, ref dy, ref dx, i, (int)(i / inner % channels), k);
        }
    }

    /// <summary>Element <paramref name="i"/> of dx, of channel <paramref name="c"/>, no mask: <see cref="RunGradient"/> in T.</summary>
    private static void InputGradientElement<T>(ref T x, ref T dy, ref T dx, nint i, int c, GradientCoefficients<T> k)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        Unsafe.Add(ref dx, i) = RunGradient<T, ScalarOps<T>, T>(
            ref x, ref dy, (nuint)i, Unsafe.Add(ref k.Center, c), Unsafe.Add(ref k.A, c), Unsafe.Add(ref k.P, c), Unsafe.Add(ref k.Q, c), true, ref Unsafe.NullRef<T>());

    /// <summary>The four dx coefficients of a channel, broadcast (or selected lane by lane from two channels').</summary>
    private readonly struct RunCoefficients<TVec, TOps, T>
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public readonly TVec Center, A, P, Q;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public RunCoefficients(GradientCoefficients<T> k, int c)
        {
            Center = TOps.Broadcast(Unsafe.Add(ref k.Center, c));
            A = TOps.Broadcast(Unsafe.Add(ref k.A, c));
            P = TOps.Broadcast(Unsafe.Add(ref k.P, c));
            Q = TOps.Broadcast(Unsafe.Add(ref k.Q, c));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private RunCoefficients(TVec center, TVec a, TVec p, TVec q)
        {
            Center = center;
            A = a;
            P = p;
            Q = q;
        }

        /// <summary>Each lane from <paramref name="first"/> where <paramref name="mask"/> is set, else from <paramref name="second"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static RunCoefficients<TVec, TOps, T> Select(TVec mask, in RunCoefficients<TVec, TOps, T> first, in RunCoefficients<TVec, TOps, T> second) => new(
            TOps.Select(mask, first.Center, second.Center), TOps.Select(mask, first.A, second.A),
            TOps.Select(mask, first.P, second.P), TOps.Select(mask, first.Q, second.Q));
    }

    /// <summary>
    /// Channels-first runs with streaming stores: each run aligned from its first aligned element, its ends one by one.
    /// From memory the first half of the runs goes beside the second, pair by pair (two streams read faster than one), an
    /// odd middle run alone; run k is channel k mod C of outer index k / C.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void InputGradientRunsStreaming<TVec, TOps, T>(
        ref T x, ref T dy, ref T dx, ChannelLayout layout, ReadOnlySpan<T> weights, GradientCoefficients<T> k, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int inner = layout.Inner;
        int channels = layout.Channels;
        int runs = layout.Outer * channels;
        int pairs = prefetch ? runs / 2 : 0;
        int second = runs - pairs;
        for (int r = 0; r < pairs; r++)
        {
            var a = new GradientRun<T>(ref x, ref dy, ref dx, weights, k, r, channels, inner, TOps.Count);
            var b = new GradientRun<T>(ref x, ref dy, ref dx, weights, k, r + second, channels, inner, TOps.Count);
            InputGradientTwoRunsStreaming<TVec, TOps, T>(a, b, inner);
        }

        for (int r = pairs; r < second; r++)
        {
            InputGradientRunStreaming<TVec, TOps, T>(new GradientRun<T>(ref x, ref dy, ref dx, weights, k, r, channels, inner, TOps.Count), inner, prefetch);
        }
    }

    /// <summary>
    /// One channels-first run of the input gradient: its x, dy, dx and weights (the mask row), its channel's coefficients
    /// and <see cref="Head"/>, the elements before its first store aligned for vectors of <c>lanes</c> (dx is pinned).
    /// </summary>
    private readonly unsafe ref struct GradientRun<T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public readonly ref T X;
        public readonly ref T Dy;
        public readonly ref T Dx;
        public readonly ref T Weights;
        public readonly bool Unweighted;
        public readonly T Center, A, P, Q;
        public readonly int Head;

        public GradientRun(ref T x, ref T dy, ref T dx, ReadOnlySpan<T> weights, GradientCoefficients<T> k, int run, int channels, int inner, int lanes)
        {
            int c = run % channels;
            nint start = (nint)run * inner;
            X = ref Unsafe.Add(ref x, start);
            Dy = ref Unsafe.Add(ref dy, start);
            Dx = ref Unsafe.Add(ref dx, start);
            Unweighted = weights.IsEmpty;
            Weights = ref Unsafe.Add(ref MemoryMarshal.GetReference(weights), (nint)(run / channels) * inner);
            Center = Unsafe.Add(ref k.Center, c);
            A = Unsafe.Add(ref k.A, c);
            P = Unsafe.Add(ref k.P, c);
            Q = Unsafe.Add(ref k.Q, c);
            Head = Math.Min(inner, NonTemporal.ElementsToAlignment<T>(Unsafe.AsPointer(ref Dx), lanes * sizeof(T)));
        }

        /// <summary>Element <paramref name="i"/> of the run's dx, in T (the scalar map the vector one matches).</summary>
        public void StoreAt(int i) => Unsafe.Add(ref Dx, i) = RunGradient<T, ScalarOps<T>, T>(ref X, ref Dy, (nuint)i, Center, A, P, Q, Unweighted, ref Weights);

        /// <summary>The vector of dx at element <paramref name="i"/>, streamed, with the coefficients broadcast by the caller.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void StreamAt<TVec, TOps>(int i, TVec center, TVec a, TVec p, TVec q)
            where TVec : struct
            where TOps : IVectorOps<TVec, T> =>
            TOps.StoreStreaming(RunGradient<TVec, TOps, T>(ref X, ref Dy, (nuint)i, center, a, p, q, Unweighted, ref Weights), ref Dx, (nuint)i);
    }

    /// <summary>One run of <see cref="InputGradientRunsStreaming{TVec, TOps, T}"/> alone: its head one by one, aligned vectors, its end one by one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientRunStreaming<TVec, TOps, T>(GradientRun<T> run, int inner, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        int i = 0;
        for (; i < run.Head; i++)
        {
            run.StoreAt(i);
        }

        TVec cv = TOps.Broadcast(run.Center), av = TOps.Broadcast(run.A), pv = TOps.Broadcast(run.P), qv = TOps.Broadcast(run.Q);
        for (; i <= inner - width; i += width)
        {
            if (prefetch)
            {
                Prefetch.PairAhead(ref run.X, (nuint)i);
                Prefetch.PairAhead(ref run.Dy, (nuint)i);
            }

            run.StreamAt<TVec, TOps>(i, cv, av, pv, qv);
        }

        for (; i < inner; i++)
        {
            run.StoreAt(i);
        }
    }

    /// <summary>Two runs of <see cref="InputGradientRunsStreaming{TVec, TOps, T}"/> in one loop, prefetched; each element gets the operations it gets alone.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientTwoRunsStreaming<TVec, TOps, T>(GradientRun<T> a, GradientRun<T> b, int inner)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        int i = 0, j = 0;
        for (; i < a.Head; i++)
        {
            a.StoreAt(i);
        }

        for (; j < b.Head; j++)
        {
            b.StoreAt(j);
        }

        TVec ca = TOps.Broadcast(a.Center), aa = TOps.Broadcast(a.A), pa = TOps.Broadcast(a.P), qa = TOps.Broadcast(a.Q);
        TVec cb = TOps.Broadcast(b.Center), ab = TOps.Broadcast(b.A), pb = TOps.Broadcast(b.P), qb = TOps.Broadcast(b.Q);
        for (; i <= inner - width && j <= inner - width; i += width, j += width)
        {
            Prefetch.PairAhead(ref a.X, (nuint)i);
            Prefetch.PairAhead(ref a.Dy, (nuint)i);
            Prefetch.PairAhead(ref b.X, (nuint)j);
            Prefetch.PairAhead(ref b.Dy, (nuint)j);
            a.StreamAt<TVec, TOps>(i, ca, aa, pa, qa);
            b.StreamAt<TVec, TOps>(j, cb, ab, pb, qb);
        }

        for (; i <= inner - width; i += width)
        {
            a.StreamAt<TVec, TOps>(i, ca, aa, pa, qa);
        }

        for (; j <= inner - width; j += width)
        {
            b.StreamAt<TVec, TOps>(j, cb, ab, pb, qb);
        }

        for (; i < inner; i++)
        {
            a.StoreAt(i);
        }

        for (; j < inner; j++)
        {
            b.StoreAt(j);
        }
    }

    /// <summary>Stores plainly, or with a streaming store when <typeparamref name="TStream"/> is on (aligned destination).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreTo<TVec, TOps, T, TStream>(TVec value, ref T destination, nuint offset)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TStream : ISwitch
    {
        if (TStream.On)
        {
            TOps.StoreStreaming(value, ref destination, offset);
        }
        else
        {
            TOps.Store(value, ref destination, offset);
        }
    }

    /// <summary>
    /// Channels-last rows of at most four vectors: all coefficients in registers, one specialised loop per chunk count;
    /// each row's vectors are all loaded before any is stored (so dx may be dy, and the overlapping last chunk is exact).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientNarrowRows<TVec, TOps, T, TChunks, TStream>(ref T x, ref T dy, ref T dx, int rows, int channels, ReadOnlySpan<T> weights, GradientCoefficients<T> k, bool down = false)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TChunks : IChunkCount
        where TStream : ISwitch
    {
        int width = TOps.Count;
        int chunks = TChunks.Value;
        nuint c1 = (nuint)Math.Min(width, channels - width);
        nuint c2 = (nuint)Math.Min(2 * width, channels - width);
        nuint c3 = (nuint)Math.Min(3 * width, channels - width);
        TVec m0 = TOps.Load(ref k.Center, 0), m1 = TOps.Load(ref k.Center, c1), m2 = TOps.Load(ref k.Center, c2), m3 = TOps.Load(ref k.Center, c3);
        TVec a0 = TOps.Load(ref k.A, 0), a1 = TOps.Load(ref k.A, c1), a2 = TOps.Load(ref k.A, c2), a3 = TOps.Load(ref k.A, c3);
        TVec p0 = TOps.Load(ref k.P, 0), p1 = TOps.Load(ref k.P, c1), p2 = TOps.Load(ref k.P, c2), p3 = TOps.Load(ref k.P, c3);
        TVec q0 = TOps.Load(ref k.Q, 0), q1 = TOps.Load(ref k.Q, c1), q2 = TOps.Load(ref k.Q, c2), q3 = TOps.Load(ref k.Q, c3);
        bool masked = !weights.IsEmpty;
        ref T weight = ref MemoryMarshal.GetReference(weights);
        TVec w = TOps.Broadcast(T.One);
        // From the first row, or from the last when `down` (CacheLine.WalkDown).
        nuint stride = down ? (nuint)(-(nint)channels) : (nuint)channels;
        nuint o = down ? (nuint)(rows - 1) * (nuint)channels : 0;
        for (int r = 0; r < rows; r++, o += stride)
        {
            if (masked)
            {
                w = TOps.Broadcast(Unsafe.Add(ref weight, down ? rows - 1 - r : r));
            }

            TVec x0 = TOps.Load(ref x, o), g0 = TOps.Load(ref dy, o);
            TVec x1 = chunks > 1 ? TOps.Load(ref x, o + c1) : x0, g1 = chunks > 1 ? TOps.Load(ref dy, o + c1) : g0;
            TVec x2 = chunks > 2 ? TOps.Load(ref x, o + c2) : x0, g2 = chunks > 2 ? TOps.Load(ref dy, o + c2) : g0;
            TVec x3 = chunks > 3 ? TOps.Load(ref x, o + c3) : x0, g3 = chunks > 3 ? TOps.Load(ref dy, o + c3) : g0;
            if (chunks > 3)
            {
                StoreTo<TVec, TOps, T, TStream>(Gradient(x3, g3, m3, a3, p3, q3, w), ref dx, o + c3);
            }

            if (chunks > 2)
            {
                StoreTo<TVec, TOps, T, TStream>(Gradient(x2, g2, m2, a2, p2, q2, w), ref dx, o + c2);
            }

            if (chunks > 1)
            {
                StoreTo<TVec, TOps, T, TStream>(Gradient(x1, g1, m1, a1, p1, q1, w), ref dx, o + c1);
            }

            StoreTo<TVec, TOps, T, TStream>(Gradient(x0, g0, m0, a0, p0, q0, w), ref dx, o);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static TVec Gradient(TVec x, TVec g, TVec m, TVec a, TVec p, TVec q, TVec w) =>
            TOps.Add(TOps.Multiply(g, a), TOps.Multiply(TOps.Add(TOps.Multiply(TOps.Subtract(x, m), p), q), w));
    }

    /// <summary>
    /// Wide channels-last rows: from memory (<paramref name="prefetch"/>) rows of at most
    /// <see cref="InputGradientTileBytes"/> in two halves at once (<see cref="InputGradientRowHalves{TVec, TOps, T, TStream}"/>),
    /// wider ones in blocks (<see cref="InputGradientWideBlocks{TVec, TOps, T, TStream}"/>); in cache one row at a time
    /// from the last (<see cref="InputGradientWideRowsDownward{TVec, TOps, T, TStream}"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientWideRows<TVec, TOps, T, TStream>(
        ref T x, ref T dy, ref T dx, int rows, int channels, ReadOnlySpan<T> weights, GradientCoefficients<T> k, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TStream : ISwitch
    {
        if (TStream.On && prefetch && weights.IsEmpty && TOps.Count * Unsafe.SizeOf<T>() >= CacheLine.Bytes)
        {
            InputGradientRowStreams<TVec, TOps, T>(ref x, ref dy, ref dx, rows, channels, k);
        }
        else if (prefetch && channels <= InputGradientTileChannels<T>())
        {
            InputGradientRowHalves<TVec, TOps, T, TStream>(ref x, ref dy, ref dx, rows, channels, weights, k);
        }
        else if (prefetch)
        {
            InputGradientWideBlocks<TVec, TOps, T, TStream>(ref x, ref dy, ref dx, rows, channels, weights, k);
        }
        else
        {
            InputGradientWideRowsDownward<TVec, TOps, T, TStream>(ref x, ref dy, ref dx, rows, channels, weights, k);
        }
    }

    /// <summary>
    /// Unmasked wide channels-last rows from memory with streaming stores (aligned rows, C a multiple of the width) as
    /// <see cref="InputGradientStreams"/> streams of consecutive rows side by side, a vector of channels at a time:
    /// each load of the four coefficient vectors serves every stream, and the next vector of x and dy of every stream is
    /// loaded before this vector's stores, so that no load waits behind a store to an output page offset up to a vector
    /// above its own (4K aliasing: the layer's arrays, allocated one after the other, lie 56 bytes apart). No software
    /// prefetch: the hardware follows the eight input streams. The rows left over (fewer than the count) go one at a time.
    /// Every element gets <see cref="GradientOf"/>'s operations: the same bits as any other walk.
    /// </summary>
    /// <remarks>
    /// Taken only with vectors of a whole line or more: at 256 bits a 56-byte distance lies beyond the vector, and a
    /// prototype took 1.10-1.23x the time of the block walk at 256 bits (four shapes, the benchmarks' placement). On the
    /// Zen 4 machine (32 KiB L1), the kernel alone from memory, fastest of 15 rounds, x 168 and dy 56 bytes below dx in
    /// the page (the benchmarks' placement), this walk against the older walks at 512 bits: float32 [3136, 2048]
    /// 2.74-2.92 ms against 3.61-3.69 ms (a copy 1.9-2.0 ms, x and dy read with dx streamed 2.4-2.6 ms); float64
    /// [3136, 2048] 5.34 against 7.30; float64 [100352, 64] 5.35 against 6.25; float32 [12544, 512] 3.00 against 3.04. With x or dy 56, 120 or 168 bytes below dx, or far from it,
    /// float32 [3136, 2048] took 2.35-3.23 ms against 3.03-3.78 ms. Two streams took 2.52-3.73 ms, eight (sixteen input
    /// streams) 2.65-3.73 ms.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientRowStreams<TVec, TOps, T>(ref T x, ref T dy, ref T dx, int rows, int channels, GradientCoefficients<T> k)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint width = (nuint)TOps.Count;
        int perStream = rows / InputGradientStreams;
        nuint stride = (nuint)channels;
        nuint gap = (nuint)perStream * stride;
        if (perStream > 0)
        {
            // Each stream is one stretch of gap elements; the four start gap apart.
            nuint g1 = gap, g2 = 2 * gap, g3 = 3 * gap;
            TVec x0 = TOps.Load(ref x, 0), x1 = TOps.Load(ref x, g1), x2 = TOps.Load(ref x, g2), x3 = TOps.Load(ref x, g3);
            TVec d0 = TOps.Load(ref dy, 0), d1 = TOps.Load(ref dy, g1), d2 = TOps.Load(ref dy, g2), d3 = TOps.Load(ref dy, g3);
            nuint c = 0;
            nuint e = 0;
            TVec m, a, p, q;
            for (nuint last = gap - width; e < last; e += width)
            {
                m = TOps.Load(ref k.Center, c);
                a = TOps.Load(ref k.A, c);
                p = TOps.Load(ref k.P, c);
                q = TOps.Load(ref k.Q, c);
                TVec w0 = GradientOf<TVec, TOps, T>(x0, d0, m, a, p, q), w1 = GradientOf<TVec, TOps, T>(x1, d1, m, a, p, q);
                TVec w2 = GradientOf<TVec, TOps, T>(x2, d2, m, a, p, q), w3 = GradientOf<TVec, TOps, T>(x3, d3, m, a, p, q);
                nuint n = e + width;
                x0 = TOps.Load(ref x, n);
                x1 = TOps.Load(ref x, n + g1);
                x2 = TOps.Load(ref x, n + g2);
                x3 = TOps.Load(ref x, n + g3);
                d0 = TOps.Load(ref dy, n);
                d1 = TOps.Load(ref dy, n + g1);
                d2 = TOps.Load(ref dy, n + g2);
                d3 = TOps.Load(ref dy, n + g3);
                TOps.StoreStreaming(w0, ref dx, e);
                TOps.StoreStreaming(w1, ref dx, e + g1);
                TOps.StoreStreaming(w2, ref dx, e + g2);
                TOps.StoreStreaming(w3, ref dx, e + g3);
                c += width;
                if (c == stride)
                {
                    c = 0;
                }
            }

            m = TOps.Load(ref k.Center, c);
            a = TOps.Load(ref k.A, c);
            p = TOps.Load(ref k.P, c);
            q = TOps.Load(ref k.Q, c);
            TOps.StoreStreaming(GradientOf<TVec, TOps, T>(x0, d0, m, a, p, q), ref dx, e);
            TOps.StoreStreaming(GradientOf<TVec, TOps, T>(x1, d1, m, a, p, q), ref dx, e + g1);
            TOps.StoreStreaming(GradientOf<TVec, TOps, T>(x2, d2, m, a, p, q), ref dx, e + g2);
            TOps.StoreStreaming(GradientOf<TVec, TOps, T>(x3, d3, m, a, p, q), ref dx, e + g3);
        }

        for (int r = InputGradientStreams * perStream; r < rows; r++)
        {
            nuint o = (nuint)r * stride;
            for (nuint c = 0; c < stride; c += width)
            {
                TOps.StoreStreaming(GradientAt<TVec, TOps, T>(ref Unsafe.Add(ref x, o), ref Unsafe.Add(ref dy, o), c, k, statisticsTerm: true), ref dx, o + c);
            }
        }
    }

    /// <summary>
    /// Wide channels-last rows from memory that fit one tile (<see cref="InputGradientTileBytes"/>): row r beside row
    /// r + ceil(rows / 2), each vector's x and dy prefetched <see cref="Prefetch.PairDistanceBytes"/> ahead in both halves,
    /// the odd middle row alone, then the last <c>C mod width</c> channels of every row one by one (no overlapping vector:
    /// dx may be dy). Every element takes the operations it takes on any other path: the same bits.
    /// </summary>
    /// <remarks>
    /// One core of the Intel machine reads two streams from memory faster than one (thirty-sixth session). dx alone, builds
    /// alternating in one process, against the block walk: double [32,56,56,64] 0.84-0.89 of its time, [25088,256]
    /// 0.78-0.91, float [12544,512] 0.87-0.94; the same rows walked in one stream with this prefetch took 0.83-0.95, so
    /// part of the gain is the prefetch distance and part the second stream. Pairs of whole blocks, each with the next
    /// block prefetched, were slower (double [64,7,7,2048] 1.11-1.23, [32,56,56,64] 1.0-1.04).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientRowHalves<TVec, TOps, T, TStream>(
        ref T x, ref T dy, ref T dx, int rows, int channels, ReadOnlySpan<T> weights, GradientCoefficients<T> k)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TStream : ISwitch
    {
        int width = TOps.Count;
        int vectorEnd = channels - (channels % width);
        nuint stride = (nuint)channels;
        int half = rows / 2;
        int secondRow = rows - half;
        nuint second = (nuint)secondRow * stride;
        for (int r = 0; r < half; r++)
        {
            nuint o = (nuint)r * stride;
            bool termA = weights.IsEmpty || weights[r] != T.Zero;
            bool termB = weights.IsEmpty || weights[secondRow + r] != T.Zero;
            ref T xa = ref Unsafe.Add(ref x, o);
            ref T ga = ref Unsafe.Add(ref dy, o);
            ref T da = ref Unsafe.Add(ref dx, o);
            ref T xb = ref Unsafe.Add(ref xa, second);
            ref T gb = ref Unsafe.Add(ref ga, second);
            ref T db = ref Unsafe.Add(ref da, second);
            for (nuint c = 0; c < (nuint)vectorEnd; c += (nuint)width)
            {
                Prefetch.PairAhead(ref xa, c);
                Prefetch.PairAhead(ref ga, c);
                Prefetch.PairAhead(ref xb, c);
                Prefetch.PairAhead(ref gb, c);
                StoreTo<TVec, TOps, T, TStream>(GradientAt<TVec, TOps, T>(ref xa, ref ga, c, k, termA), ref da, c);
                StoreTo<TVec, TOps, T, TStream>(GradientAt<TVec, TOps, T>(ref xb, ref gb, c, k, termB), ref db, c);
            }
        }

        for (int r = half; r < secondRow; r++)
        {
            nuint o = (nuint)r * stride;
            bool term = weights.IsEmpty || weights[r] != T.Zero;
            for (nuint c = 0; c < (nuint)vectorEnd; c += (nuint)width)
            {
                StoreTo<TVec, TOps, T, TStream>(GradientAt<TVec, TOps, T>(ref Unsafe.Add(ref x, o), ref Unsafe.Add(ref dy, o), c, k, term), ref Unsafe.Add(ref dx, o), c);
            }
        }

        InputGradientLastChannels(ref x, ref dy, ref dx, 0, rows, channels, vectorEnd, weights, k);
    }

    /// <summary>
    /// Wide channels-last rows from memory. The rows are walked in blocks of about <see cref="PrefetchBlockBytes"/> of each
    /// stream, a tile of <see cref="InputGradientTileChannels{T}"/> channels at a time down the block's rows, so the tile's
    /// four coefficient arrays (8 KiB) stay in L1 beside x and dy; meanwhile the next block of x and dy (and of dx, when
    /// the stores are plain) is prefetched, one line of each per line's worth of elements computed, its two halves side by
    /// side (<see cref="BlockHalvesAhead"/>). The last C mod width channels of the block's rows go one by one (no
    /// overlapping vector: dx may be dy). Every element takes the same operations as on any other path, so the walk does
    /// not change the bits.
    /// </summary>
    /// <remarks>
    /// Prototypes of the streaming pass on pinned buffers, float32 from memory at 256 bits, x, dy and dx on cache lines
    /// (as the shifted rows put them), fastest of 16 ABBA rounds against a copy, twenty-sixth session: [3136, 2048]
    /// 0.89-0.91x, where the loop of the twenty-second to twenty-fifth sessions (tiles of 1024 channels down all the rows,
    /// the next row's tile prefetched) took 1.16-1.25x and reading x and dy while streaming their sum to dx 0.87-0.94x;
    /// [1568, 4096] 0.96-0.99x against 1.20-1.22x; [12544, 512] 0.82x and [6272, 1024] 0.90-0.93x against 0.94-1.04x for
    /// whole rows prefetched <see cref="Prefetch.PairDistanceBytes"/> ahead. Tiles of 1024 channels took 0.98-1.04x on
    /// [3136, 2048] and 1.19-1.26x on [1568, 4096], blocks of 32 KiB 0.95-0.97x and 1.10-1.16x, and a prefetch per vector
    /// instead of per line 0.93x and 1.04x.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientWideBlocks<TVec, TOps, T, TStream>(
        ref T x, ref T dy, ref T dx, int rows, int channels, ReadOnlySpan<T> weights, GradientCoefficients<T> k)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TStream : ISwitch
    {
        int width = TOps.Count;
        int vectorEnd = channels - (channels % width);
        nuint w = (nuint)width;
        nuint stride = (nuint)channels;
        nuint lineMask = (nuint)(CacheLine.Bytes / Unsafe.SizeOf<T>()) - 1;
        int blockRows = PrefetchBlockRows<T>(channels);
        int tile = InputGradientTileChannels<T>();
        for (int r0 = 0; r0 < rows; r0 += blockRows)
        {
            int count = Math.Min(blockRows, rows - r0);
            nuint first = (nuint)r0 * stride;

            // The next block, its two halves side by side (past the tensor's end a prefetch never faults).
            var aheadStreams = new BlockHalvesAhead(first + ((nuint)blockRows * stride), (nuint)blockRows * stride, w);
            for (int c0 = 0; c0 < vectorEnd; c0 += tile)
            {
                nuint c1 = (nuint)Math.Min(c0 + tile, vectorEnd);
                for (int r = 0; r < count; r++)
                {
                    nuint o = first + ((nuint)r * stride);
                    bool statisticsTerm = weights.IsEmpty || weights[r0 + r] != T.Zero;
                    ref T xr = ref Unsafe.Add(ref x, o);
                    ref T gr = ref Unsafe.Add(ref dy, o);
                    ref T dr = ref Unsafe.Add(ref dx, o);
                    for (nuint c = (nuint)c0; c < c1; c += w)
                    {
                        nuint ahead = aheadStreams.Next();
                        if ((ahead & lineMask) < w)
                        {
                            Prefetch.At(ref x, ahead);
                            Prefetch.At(ref dy, ahead);
                            if (!TStream.On)
                            {
                                Prefetch.At(ref dx, ahead);
                            }
                        }

                        StoreTo<TVec, TOps, T, TStream>(GradientAt<TVec, TOps, T>(ref xr, ref gr, c, k, statisticsTerm), ref dr, c);
                    }
                }
            }

            InputGradientLastChannels(ref x, ref dy, ref dx, r0, count, channels, vectorEnd, weights, k);
        }
    }

    /// <summary>
    /// The last <c>C mod width</c> channels (from <paramref name="vectorEnd"/>) of rows <c>firstRow .. firstRow + count - 1</c>
    /// of channels-last dx, one element at a time through the scalar map (no overlapping vector: dx may be dy), for the
    /// wide-row walks that leave them out of their vectors.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientLastChannels<T>(
        ref T x, ref T dy, ref T dx, int firstRow, int count, int channels, int vectorEnd, ReadOnlySpan<T> weights, GradientCoefficients<T> k)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        for (int r = firstRow; r < firstRow + count && vectorEnd < channels; r++)
        {
            nuint o = (nuint)r * (nuint)channels;
            bool statisticsTerm = weights.IsEmpty || weights[r] != T.Zero;
            for (nuint c = (nuint)vectorEnd; c < (nuint)channels; c++)
            {
                Unsafe.Add(ref dx, o + c) = GradientAt<T, ScalarOps<T>, T>(ref Unsafe.Add(ref x, o), ref Unsafe.Add(ref dy, o), c, k, statisticsTerm);
            }
        }
    }

    /// <summary>
    /// Wide channels-last rows in cache, one at a time from the last row to the first, so the pass starts on the rows the
    /// gradient sums read last; the four coefficient vectors are loaded for each row. Each row goes from its first vector,
    /// or from its last when dx's page offset lies just above x's and dy's (<see cref="CacheLine.WalkDown"/>). Rows wider
    /// than <see cref="WideTileBytes"/> take <see cref="InputGradientWideTilesDownward{TVec, TOps, T, TStream}"/>.
    /// </summary>
    /// <remarks>
    /// Until the thirty-fourth session rows went in pairs, the last vector first, one coefficient load for both (the AMD
    /// machine of the fifteenth session had timed one row at 1.9-2.2x a copy and a pair at 1.85-1.95x). On the Intel
    /// machine (48 KiB 12-way L1; 4 KiB rows put a pair's six streams in the same sets) pairs were the slower walk, and
    /// walking each row from its last vector was slow or not depending on where x, dy and dx start in their pages. The
    /// sums and dx of a float32 [256,1024] backward, with x, dy and dx at nineteen sets of page offsets, took 0.68-0.90 of
    /// the pairs' time this way; [512,512], [1024,256] and float64 [512,256] 0.50-0.68, [2048,128] and float64
    /// [256,512] 0.73-0.80. Walking each row from its last vector took 0.65-1.29 over the same offsets (over 1 at seven).
    /// <para>
    /// Those seven are the page offsets a load waits at (<see cref="CacheLine.AliasBytes"/>), and since the forty-third
    /// session the walk within a row is chosen by them. Arrays allocated one after the other put dx 56 bytes above dy. On
    /// the AMD EPYC (Zen 4) of that session, the layer's float32 backward on such arrays, the two walks alternating in one
    /// process, fastest of 15 rounds against a copy: [256,1024] 3.84-3.89x against 4.50-4.52x, [1024,256] 3.54-3.62x
    /// against 4.66-4.70x, [512,512] 3.89-3.95x against 4.56-4.61x, [2048,96] 3.04-3.15x against 3.54-4.24x, and, tiled,
    /// [128,4096] 5.20-5.27x against 5.52-5.82x.
    /// </para>
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientWideRowsDownward<TVec, TOps, T, TStream>(
        ref T x, ref T dy, ref T dx, int rows, int channels, ReadOnlySpan<T> weights, GradientCoefficients<T> k)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TStream : ISwitch
    {
        bool down = CacheLine.WalkDown(in dx, in x, in dy, 0);
        if (channels - (channels % TOps.Count) > TileChannels<T>())
        {
            InputGradientWideTilesDownward<TVec, TOps, T, TStream>(ref x, ref dy, ref dx, rows, channels, weights, k, down);
            return;
        }

        nuint stride = (nuint)channels;
        for (int r = rows - 1; r >= 0; r--)
        {
            nuint o = (nuint)r * stride;
            bool statisticsTerm = weights.IsEmpty || weights[r] != T.Zero;
            if (down)
            {
                InputGradientRowDown<TVec, TOps, T, TStream>(ref Unsafe.Add(ref x, o), ref Unsafe.Add(ref dy, o), ref Unsafe.Add(ref dx, o), channels, k, statisticsTerm);
            }
            else
            {
                InputGradientRow<TVec, TOps, T, TStream>(ref Unsafe.Add(ref x, o), ref Unsafe.Add(ref dy, o), ref Unsafe.Add(ref dx, o), channels, k, statisticsTerm);
            }
        }
    }

    /// <summary>
    /// <see cref="InputGradientWideRowsDownward{TVec, TOps, T, TStream}"/> for rows wider than
    /// <see cref="WideTileBytes"/>: blocks of <see cref="TiledBlockRows"/> rows from the last to the first, each a tile of
    /// that many bytes of channels at a time from the last tile to the first, its rows from the last to the first and each
    /// row's part of the tile from its first vector, so that the tile's four coefficient arrays stay in L1 beside the three
    /// streams. When C is not a multiple of the width, the overlapping last vector of each row of a block is computed into
    /// a stack buffer before the block's first store and stored after its last, so dx may be dy. One row at a time, not
    /// pairs, since the thirty-fourth session: float64 [128,1024] and [256,1024], float32 [128,2048] and [64,4096]
    /// took 0.98-1.03 of the pairs' time at two sets of page offsets and 0.65-0.86 at a third.
    /// </summary>
    /// <remarks>
    /// Whole rows of 8 KiB (32 KiB of coefficients and 48 KiB of data per pair of rows, as the loop was then) do not
    /// leave the coefficients in the 48 KiB L1 until the next pair. Plain loops (fifteenth session, fastest of 15 rounds
    /// against a copy): double [256,1024] 1.90-1.91x with 4 KiB tiles through 32 rows against 2.44-2.47x whole rows, float32 [256,2048]
    /// 1.89-2.51x against 2.53-2.86x; float32 [256,1024], whose rows are one tile, 1.88-1.94x against 1.95-2.04x. The
    /// layer's backward with the untiled and tiled loops alternating in one process (fastest of 15 rounds, four rounds in
    /// two processes): double [256,1024] 3.38-3.98x against 3.57-4.20x, float32 [256,2048] 3.30-3.97x against
    /// 3.60-4.23x, [128,4096] 2.79-4.43x against 2.95-4.65x, lower in every round.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientWideTilesDownward<TVec, TOps, T, TStream>(
        ref T x, ref T dy, ref T dx, int rows, int channels, ReadOnlySpan<T> weights, GradientCoefficients<T> k, bool down)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TStream : ISwitch
    {
        nuint w = (nuint)TOps.Count;
        nuint stride = (nuint)channels;
        nuint last = stride - w;
        bool tail = channels % TOps.Count != 0;
        nuint vectorEnd = stride - (stride % w);
        nuint tile = (nuint)TileChannels<T>();
        Span<T> tails = stackalloc T[tail ? TiledBlockRows * TOps.Count : 0];
        ref T tv = ref MemoryMarshal.GetReference(tails);
        for (int r0 = (rows - 1) / TiledBlockRows * TiledBlockRows; r0 >= 0; r0 -= TiledBlockRows)
        {
            int r1 = Math.Min(rows, r0 + TiledBlockRows);
            for (int r = r0; tail && r < r1; r++)
            {
                nuint o = (nuint)r * stride;
                TVec value = GradientAt<TVec, TOps, T>(ref Unsafe.Add(ref x, o), ref Unsafe.Add(ref dy, o), last, k, weights.IsEmpty || weights[r] != T.Zero);
                TOps.Store(value, ref tv, (nuint)(r - r0) * w);
            }

            for (nuint c0 = (vectorEnd - 1) / tile * tile; ; c0 -= tile)
            {
                nuint c1 = Math.Min(vectorEnd, c0 + tile);
                InputGradientTileRows<TVec, TOps, T, TStream>(ref x, ref dy, ref dx, stride, r0, r1, weights, k, c0, c1, down);
                if (c0 == 0)
                {
                    break;
                }
            }

            for (int r = r0; tail && r < r1; r++)
            {
                StoreTo<TVec, TOps, T, TStream>(TOps.Load(ref tv, (nuint)(r - r0) * w), ref dx, ((nuint)r * stride) + last);
            }
        }
    }

    /// <summary>
    /// One tile of <see cref="InputGradientWideTilesDownward{TVec, TOps, T, TStream}"/>: channels [c0, c1) of rows
    /// [r0, r1), the rows from the last, each from its last vector when <paramref name="down"/> is set; a masked-out row
    /// gets <c>dy a</c>. Its own method, not inlined: inside the tile walk the JIT kept the coefficient references on the
    /// stack and reloaded them beside every vector (three loads more to six, in a loop bound by its loads).
    /// </summary>
    /// <remarks>
    /// On the Zen 4 machine, in cache, the layer's arrays (x, dy and dx 88, 200 and 256 bytes into their pages), fastest
    /// of 20 rounds, dx alone: float64 [256, 1024] 98 us against 103-129 us inline, float64 [128, 1024] 48 against 58-63,
    /// float32 [128, 2048] 47 against 58-62, [64, 4096] 48 against 60-65; a plain loop of the same walk took 93-94, 47,
    /// 47 and 48 us. One call a row of a tile (instead of the tile's rows) took 99-100, 49-50, 49-50 and 50-52 us.
    /// </remarks>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientTileRows<TVec, TOps, T, TStream>(
        ref T x, ref T dy, ref T dx, nuint stride, int r0, int r1, ReadOnlySpan<T> weights, GradientCoefficients<T> k, nuint c0, nuint c1, bool down)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TStream : ISwitch
    {
        nuint w = (nuint)TOps.Count;
        for (int r = r1 - 1; r >= r0; r--)
        {
            nuint o = (nuint)r * stride;
            ref T xr = ref Unsafe.Add(ref x, o);
            ref T gr = ref Unsafe.Add(ref dy, o);
            ref T dr = ref Unsafe.Add(ref dx, o);
            // The masked-out test outside the vector loops: GradientAt with a constant leaves no branch in them.
            if (!weights.IsEmpty && weights[r] == T.Zero)
            {
                for (nuint c = c0; c != c1; c += w)
                {
                    StoreTo<TVec, TOps, T, TStream>(GradientAt<TVec, TOps, T>(ref xr, ref gr, c, k, statisticsTerm: false), ref dr, c);
                }
            }
            else if (down)
            {
                for (nuint c = c1; c != c0;)
                {
                    c -= w;
                    StoreTo<TVec, TOps, T, TStream>(GradientAt<TVec, TOps, T>(ref xr, ref gr, c, k, statisticsTerm: true), ref dr, c);
                }
            }
            else
            {
                for (nuint c = c0; c != c1; c += w)
                {
                    StoreTo<TVec, TOps, T, TStream>(GradientAt<TVec, TOps, T>(ref xr, ref gr, c, k, statisticsTerm: true), ref dr, c);
                }
            }
        }
    }

    /// <summary>A channels-last row (coefficients vary along it). Requires count &gt;= width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputGradientRow<TVec, TOps, T, TStream>(ref T x, ref T dy, ref T dx, int count, GradientCoefficients<T> k, bool statisticsTerm)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TStream : ISwitch
    {
        int width = TOps.Count;
        nuint last = (nuint)(count - width);
        TVec lastValue = GradientAt<TVec, TOps, T>(ref x, ref dy, last, k, statisticsTerm);
        nuint i = 0;
        for (; i <= last; i += (nuint)width)
        {
            StoreTo<TVec, TOps, T, TStream>(GradientAt<TVec, TOps, T>(ref x, ref dy, i, k, statisticsTerm), ref dx, i);
        }

        if (i < (nuint)count)
        {
            StoreTo<TVec, TOps, T, TStream>(lastValue, ref dx, last);
        }
    }

    /// <summary>
    /// <see cref="InputGradientRow{TVec, TOps, T, TStream}"/> from the last whole vector to the first (see
    /// <see cref="CacheLine.WalkDown"/>); the overlapping last vector, computed before any store, is stored last.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputGradientRowDown<TVec, TOps, T, TStream>(ref T x, ref T dy, ref T dx, int count, GradientCoefficients<T> k, bool statisticsTerm)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TStream : ISwitch
    {
        nuint w = (nuint)TOps.Count;
        nuint last = (nuint)count - w;
        TVec lastValue = GradientAt<TVec, TOps, T>(ref x, ref dy, last, k, statisticsTerm);
        nuint vectorEnd = (nuint)count - ((nuint)count % w);
        for (nuint i = vectorEnd; i != 0;)
        {
            i -= w;
            StoreTo<TVec, TOps, T, TStream>(GradientAt<TVec, TOps, T>(ref x, ref dy, i, k, statisticsTerm), ref dx, i);
        }

        if (vectorEnd < (nuint)count)
        {
            StoreTo<TVec, TOps, T, TStream>(lastValue, ref dx, last);
        }
    }

    /// <summary>dx at element <paramref name="i"/> of a channels-last row (coefficients indexed by channel = i):
    /// <c>dy a + ((x - center) p + q)</c>, or <c>dy a</c> for a masked-out row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TVec GradientAt<TVec, TOps, T>(ref T x, ref T dy, nuint i, GradientCoefficients<T> k, bool statisticsTerm)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (!statisticsTerm)
        {
            return TOps.Multiply(TOps.Load(ref dy, i), TOps.Load(ref k.A, i));
        }

        return GradientOf<TVec, TOps, T>(
            TOps.Load(ref x, i), TOps.Load(ref dy, i), TOps.Load(ref k.Center, i), TOps.Load(ref k.A, i), TOps.Load(ref k.P, i), TOps.Load(ref k.Q, i));
    }

    /// <summary>dx of an unmasked vector from its x, dy and coefficients: <c>dy a + ((x - center) p + q)</c>, in that order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TVec GradientOf<TVec, TOps, T>(TVec x, TVec dy, TVec center, TVec a, TVec p, TVec q)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        TOps.Add(TOps.Multiply(dy, a), TOps.Add(TOps.Multiply(TOps.Subtract(x, center), p), q));

    /// <summary>A contiguous run of one channel (coefficients constant), optionally weighted per element. Requires count &gt;= width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputGradientRun<TVec, TOps, T>(
        ref T x, ref T dy, ref T dx, int count, TVec center, TVec a, TVec p, TVec q, bool unweighted, ref T weights, bool prefetch, bool down = false)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        nuint last = (nuint)(count - width);
        TVec lastValue = RunGradient<TVec, TOps, T>(ref x, ref dy, last, center, a, p, q, unweighted, ref weights);
        if (down)
        {
            // From the last whole vector to the first (in cache: no prefetch); the overlapping last vector is stored last.
            nuint vectorEnd = (nuint)count - ((nuint)count % (nuint)width);
            for (nuint j = vectorEnd; j != 0;)
            {
                j -= (nuint)width;
                TOps.Store(RunGradient<TVec, TOps, T>(ref x, ref dy, j, center, a, p, q, unweighted, ref weights), ref dx, j);
            }

            if (vectorEnd < (nuint)count)
            {
                TOps.Store(lastValue, ref dx, last);
            }

            return;
        }

        nuint i = 0;
        for (; i <= last; i += (nuint)width)
        {
            if (prefetch)
            {
                Prefetch.PairAhead(ref x, i);
                Prefetch.PairAhead(ref dy, i);
                Prefetch.PairAhead(ref dx, i);
            }

            TOps.Store(RunGradient<TVec, TOps, T>(ref x, ref dy, i, center, a, p, q, unweighted, ref weights), ref dx, i);
        }

        if (i < (nuint)count)
        {
            TOps.Store(lastValue, ref dx, last);
        }
    }

    /// <summary>dx at element <paramref name="i"/> of a run of one channel: <c>dy a + w ((x - center) p + q)</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TVec RunGradient<TVec, TOps, T>(ref T x, ref T dy, nuint i, TVec center, TVec a, TVec p, TVec q, bool unweighted, ref T weights)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        TVec statistics = TOps.Add(TOps.Multiply(TOps.Subtract(TOps.Load(ref x, i), center), p), q);
        if (!unweighted)
        {
            statistics = TOps.Multiply(statistics, TOps.Load(ref weights, i));
        }

        return TOps.Add(TOps.Multiply(TOps.Load(ref dy, i), a), statistics);
    }

    /// <summary>
    /// The per-channel gradient coefficients from the two sums, in double precision:
    /// <c>sum(dy * xhat) = (sumDyCentered - (mean - center) * sumDy) / s</c> with <c>1/s = inverseStddev</c>;
    /// <c>dbeta = sumDy</c>; <c>dgamma = r * sum(dy * xhat) + d * sumDy</c> after a training call (r = 1, d = 0 without
    /// renorm), <c>sum(dy * xhat)</c> otherwise; and the input-gradient map <c>dx = a dy + w (p (x - center) + q)</c>
    /// with <c>a = gamma' / s</c>, and after a training call <c>p = -a sum(dy * xhat) / (D s)</c>,
    /// <c>q = -a sumDy / D - p ((mean - center) + mean * maskShift)</c>, D the statistics' denominator
    /// (<c>1/D = inverseDenominator</c>); after an inference call (empty <paramref name="r"/>) p = q = 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ChannelGradientCoefficients<T>(
        ReadOnlySpan<double> mean, ReadOnlySpan<double> inverseStddev, ReadOnlySpan<double> effectiveGamma, ReadOnlySpan<T> center,
        ReadOnlySpan<double> sumDy, ReadOnlySpan<double> sumDyCentered, ReadOnlySpan<double> r, ReadOnlySpan<double> d,
        double inverseDenominator, double maskShift,
        Span<double> gammaGradient, Span<double> betaGradient, Span<T> a, Span<T> p, Span<T> q)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        sumDy.CopyTo(betaGradient);
        if (r.IsEmpty)
        {
            p.Clear();
            q.Clear();
        }

        var loop = new GradientCoefficientsLoop<T>(
            mean, inverseStddev, effectiveGamma, center, sumDy, sumDyCentered, r, d, inverseDenominator, maskShift, gammaGradient, a, p, q);
        ChannelLoop.Run(ref loop);
    }

    /// <summary>The loop of <see cref="ChannelGradientCoefficients{T}"/>.</summary>
    private readonly ref struct GradientCoefficientsLoop<T>(
        ReadOnlySpan<double> mean, ReadOnlySpan<double> inverseStddev, ReadOnlySpan<double> effectiveGamma, ReadOnlySpan<T> center,
        ReadOnlySpan<double> sumDy, ReadOnlySpan<double> sumDyCentered, ReadOnlySpan<double> r, ReadOnlySpan<double> d,
        double inverseDenominator, double maskShift, Span<double> gammaGradient, Span<T> a, Span<T> p, Span<T> q) : IChannelLoop
        where T : unmanaged
    {
        private readonly ReadOnlySpan<double> _mean = mean;
        private readonly ReadOnlySpan<double> _inverseStddev = inverseStddev;
        private readonly ReadOnlySpan<double> _effectiveGamma = effectiveGamma;
        private readonly ReadOnlySpan<T> _center = center;
        private readonly ReadOnlySpan<double> _sumDy = sumDy;
        private readonly ReadOnlySpan<double> _sumDyCentered = sumDyCentered;
        private readonly ReadOnlySpan<double> _r = r;
        private readonly ReadOnlySpan<double> _d = d;
        private readonly Span<double> _gammaGradient = gammaGradient;
        private readonly Span<T> _a = a;
        private readonly Span<T> _p = p;
        private readonly Span<T> _q = q;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Run<TVec, TOps>(int start)
            where TVec : struct
            where TOps : IVectorOps<TVec, double>
        {
            bool batch = !_r.IsEmpty;
            int c = start;
            for (; c <= _mean.Length - TOps.Count; c += TOps.Count)
            {
                nuint i = (nuint)c;
                TOps.StoreNarrowed(Step<TVec, TOps>(i, out TVec pc, out TVec qc), ref MemoryMarshal.GetReference(_a), i);
                if (batch)
                {
                    TOps.StoreNarrowed(pc, ref MemoryMarshal.GetReference(_p), i);
                    TOps.StoreNarrowed(qc, ref MemoryMarshal.GetReference(_q), i);
                }
            }

            return c;
        }

        /// <summary>
        /// The coefficients of the channels from <paramref name="i"/>: dgamma stored, and a returned with
        /// <paramref name="p"/> and <paramref name="q"/> (zero after an inference call), in double.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TVec Step<TVec, TOps>(nuint i, out TVec p, out TVec q)
            where TVec : struct
            where TOps : IVectorOps<TVec, double>
        {
            ref double gg = ref MemoryMarshal.GetReference(_gammaGradient);
            TVec invS = TOps.Load(ref MemoryMarshal.GetReference(_inverseStddev), i);
            TVec m = TOps.Load(ref MemoryMarshal.GetReference(_mean), i);
            TVec sum = TOps.Load(ref MemoryMarshal.GetReference(_sumDy), i);
            TVec rounding = TOps.Subtract(m, TOps.LoadWidened(ref MemoryMarshal.GetReference(_center), i));
            TVec sumDyXhat = TOps.Multiply(TOps.Subtract(TOps.Load(ref MemoryMarshal.GetReference(_sumDyCentered), i), TOps.Multiply(rounding, sum)), invS);
            TVec a = TOps.Multiply(TOps.Load(ref MemoryMarshal.GetReference(_effectiveGamma), i), invS);
            if (_r.IsEmpty)
            {
                TOps.Store(sumDyXhat, ref gg, i);
                p = q = TOps.Zero;
                return a;
            }

            TVec invD = TOps.Broadcast(inverseDenominator);
            TOps.Store(
                TOps.Add(TOps.Multiply(TOps.Load(ref MemoryMarshal.GetReference(_r), i), sumDyXhat), TOps.Multiply(TOps.Load(ref MemoryMarshal.GetReference(_d), i), sum)),
                ref gg, i);

            // dx = a dy + w (p (x - center) + q): see the derivation in the remarks of Backward.
            p = TOps.Multiply(TOps.Multiply(TOps.Multiply(TOps.Negate(a), sumDyXhat), invD), invS);
            q = TOps.Subtract(
                TOps.Multiply(TOps.Multiply(TOps.Negate(a), sum), invD),
                TOps.Multiply(p, TOps.Add(rounding, TOps.Multiply(m, TOps.Broadcast(maskShift)))));
            return a;
        }
    }

    /// <summary>The consecutive rows per update of the sums in <see cref="WideRowGroupGradientSums{TVec, TOps, T}"/>.</summary>
    private const int GradientRowGroup = 4;

    /// <summary>
    /// The streams of rows side by side in <see cref="InputGradientRowStreams{TVec, TOps, T}"/>: each load of the four
    /// coefficient vectors serves this many rows, and the hardware follows twice as many input streams.
    /// </summary>
    private const int InputGradientStreams = 4;

    /// <summary>
    /// Bytes of x (and of dy) in a block of the backward's wide rows from memory (<see cref="InputGradientWideBlocks{TVec, TOps, T, TStream}"/>,
    /// and until the forty-sixth session the gradient sums' interleaved walk): a block's rows are walked while the next
    /// block's are prefetched. In the sums' prototypes 32 KiB measured the same, 128 KiB between 0.03x of a copy faster
    /// and 0.06x slower, and 256 KiB (16 rows of 4096 floats) 0.4-0.6x slower; in dx's, 32 KiB took as long on rows of
    /// 512 and 1024 floats and up to 0.17x of a copy longer on rows of 4096.
    /// </summary>
    private const int PrefetchBlockBytes = 65536;

    /// <summary>Rows per block of the backward's wide rows from memory: <see cref="PrefetchBlockBytes"/> of each stream, at least one row.</summary>
    private static unsafe int PrefetchBlockRows<T>(int channels)
        where T : unmanaged => Math.Max(1, PrefetchBlockBytes / (channels * sizeof(T)));

    /// <summary>
    /// Bytes of each stream per row in a tile of <see cref="InputGradientWideBlocks{TVec, TOps, T, TStream}"/>: 512 float
    /// or 256 double channels, whose four coefficient arrays take 8 KiB of L1.
    /// </summary>
    private const int InputGradientTileBytes = 2048;

    /// <summary>Channels per tile of <see cref="InputGradientWideBlocks{TVec, TOps, T, TStream}"/>: <see cref="InputGradientTileBytes"/> of each stream.</summary>
    private static unsafe int InputGradientTileChannels<T>()
        where T : unmanaged => InputGradientTileBytes / sizeof(T);

    /// <summary>How many elements of <typeparamref name="T"/> fit in <paramref name="bytes"/>.</summary>
    private static unsafe int InterleavedChannels<T>(int bytes)
        where T : unmanaged => bytes / sizeof(T);

    /// <summary>
    /// The order in which the backward's wide-row walks from memory prefetch the block after the one they compute on: its
    /// two halves side by side, a vector of the first half, then the same vector of the second (<see cref="Next"/>), so
    /// that the reads from memory run as two streams half a block apart instead of one.
    /// </summary>
    /// <remarks>
    /// One core of the Intel machine reads two streams from memory faster than one (thirty-sixth session). In address
    /// order, the order until the thirty-seventh session, the prefetches made one. With the halves, builds alternating in
    /// one process, both slot orders, 10 rounds: the gradient sums took 0.89-0.92 of their time on float64
    /// [64,7,7,2048], 0.86-0.97 on [32,56,56,64] and [25088,256], 0.88-0.97 on float32 [64,7,7,2048]; dx 0.94-0.98,
    /// 0.91-0.96 and 0.86-0.93 on float64 [64,7,7,2048], [12544,512] and float32 [64,7,7,2048]. Four and eight streams
    /// measured the same as two. Only the prefetches move: what is computed, and in what order, is unchanged.
    /// </remarks>
    internal struct BlockHalvesAhead(nuint start, nuint length, nuint width)
    {
        private readonly nuint _half = length / 2 / width * width;
        private nuint _position = start;
        private bool _second;

        /// <summary>The element offset to prefetch next: alternately in the first and the second half, a vector on per pair.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public nuint Next()
        {
            nuint offset = _position;
            if (_second)
            {
                offset += _half;
                _position += width;
            }

            _second = !_second;
            return offset;
        }
    }

    /// <summary>Channels per tile when wide rows are walked a tile at a time: <see cref="WideTileBytes"/> of each stream per row.</summary>
    private static unsafe int TileChannels<T>()
        where T : unmanaged => WideTileBytes / sizeof(T);
}
