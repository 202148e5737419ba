using System;
using System.Buffers;
using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace BatchNorm.Kernels;

/// <summary>The layer's data passes: batch statistics, the affine pass, the training forward and the backward.</summary>
/// <remarks>
/// Every method here that walks the tensor, or that runs once per block, stripe or part of it, or that dispatches to
/// the loops (which are mostly inlined helpers), is marked <see cref="MethodImplOptions.AggressiveOptimization"/>. The
/// runtime otherwise compiles a method unoptimized for its first 30 or so calls (tier 0), where nothing is inlined and
/// every vector operation is a call, and recompiles it only after that and a 100 ms delay. A fresh process's calls 2-10
/// then took up to 10x their steady time on the large shapes (2-3x on most), and float32 [256, 1024] training took
/// 0.7-2.3 ms a call for its first 60 calls against 0.11-0.13 ms. With the attribute, calls from about the sixth on run
/// at the steady speed (<c>--first-calls</c> in the benchmarks; benchmarks/HISTORY.md, thirty-ninth session). The
/// steady speed did not move (new over old 0.87-1.12 on the shapes timed, no direction holding in both slot orders). The small-batch paths
/// (<c>Small*</c>, and what only they call) stay tiered: a call costs nanoseconds there, and tier 1 may use what tier 0
/// counted. A new kernel, or a new dispatcher in front of one, needs the attribute too;
/// <c>DOTNET_JitDisasmSummary=1</c> lists any method still compiled at tier 0.
/// </remarks>
internal static partial class BatchNormKernels
{
    /// <summary>Keras' <c>backend.epsilon()</c>, added to the count of unmasked positions in masked statistics.</summary>
    public const double MaskCountEpsilon = 1e-7;

    /// <summary>
    /// The training-mode batch statistics, as Keras computes them. Without a mask (<paramref name="weights"/> empty):
    /// <c>mean = sum(x) / n</c> and <c>variance = sum((x - mean)^2) / n</c>. With a mask (Keras 3 <c>_moments</c>):
    /// <c>mean = sum(w x) / (W + 1e-7)</c> and <c>variance = sum(w (x - mean)^2) / (W + 1e-7)</c>, W = sum(w), so a fully
    /// masked batch gives mean = variance = 0. Returns the denominator (n, or W + 1e-7), which the backward pass needs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double BatchStatistics<T>(
        ReadOnlySpan<T> x, ChannelLayout layout, ReadOnlySpan<T> weights, Span<double> mean, Span<double> variance, VectorWidth width, int maxDegree = 1,
        bool endOnLastRows = false)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (weights.IsEmpty)
        {
            Moments(x, layout, mean, variance, width, maxDegree, endOnLastRows);
            return layout.CountPerChannel;
        }

        double count = MaskedMoments(x, layout, weights, mean, variance, width);
        double denominator = count + MaskCountEpsilon;
        for (int c = 0; c < mean.Length; c++)
        {
            // The exact mean mu of the unmasked values and M2 = sum(w (x - mu)^2) give Keras' quantities directly:
            // mean_k = mu * W / D and sum(w (x - mean_k)^2) = M2 + W (mu - mean_k)^2.
            double exactMean = mean[c];
            double kerasMean = exactMean * (count / denominator);
            double shift = exactMean - kerasMean;
            variance[c] = (variance[c] + (count * shift * shift)) / denominator;
            mean[c] = kerasMean;
        }

        return denominator;
    }

    /// <summary>
    /// The vector width for <see cref="BatchStatistics{T}"/> over <paramref name="layout"/>, on a machine whose widest is
    /// <paramref name="best"/>: <see cref="VectorWidths.HalfFromMemory{T}"/> for channels-last inputs of
    /// <see cref="StatisticsHalfWidthBytes"/> or more. Channels-first inputs and the affine pass after the statistics keep
    /// the best width.
    /// </summary>
    /// <remarks>
    /// Measured on the AVX-512 machine of benchmarks/README.md (one thread unless noted, fastest rounds). The statistics
    /// kernel alone on the harness's arrays, against a copy: float32 [64, 7, 7, 2048] 0.60-0.62x at 256 bits against
    /// 0.70-0.72x at 512, float64 0.59-0.62x against 0.83-0.86x; channels first [32, 64, 56, 56] float32 0.48-0.50x
    /// against 0.57x, float64 0.44-0.45x against 0.60-0.61x; float64 [32, 56, 56, 64] 0.57x against 0.61x. float32
    /// [32, 56, 56, 64] (narrow rows) took 0.62-0.65x at 256 bits against 0.54x, and [256, 1024] (in cache) 0.86-0.92x
    /// against 0.70-0.77x. The layer's training forward, the two widths alternating in one process, 256 over 512:
    /// float32 [64, 7, 7, 2048] 0.93-0.96 (two threads 0.96-0.98), float64 0.86-0.87; [32, 64, 56, 56] float32 0.93-0.95,
    /// float64 0.81-0.83 (two threads 0.78-0.81 in both). Between builds alternating in one process, 256 over 512:
    /// float32 [6144, 1024] (24 MiB) 0.95-0.98, [5120, 1024] (20 MiB) 0.97-1.00, [4096, 1024] (16 MiB) 1.02,
    /// [3072, 1024] (12 MiB) 1.04-1.05, [2048, 1024] (8 MiB) 1.10-1.16: while x and y fit the 32 MiB L3 together, 512 bits
    /// are faster. Channels first, though, the built library's faster one-thread statistics left float32
    /// [32, 64, 56, 56] slower on two threads than on one (1.35-1.44 ms against 1.23-1.33 ms, the repository's harness,
    /// four processes; at 512 bits two threads took 0.81-0.88 of one thread's time), against the same-process comparison
    /// above; the performance issue rules out two cores being slower, so channels-first inputs keep 512 bits.
    /// </remarks>
    public static unsafe VectorWidth StatisticsWidth<T>(VectorWidth best, ChannelLayout layout)
        where T : unmanaged => VectorWidths.HalfFromMemory<T>(best, layout, layout.IsChannelsLast && (long)layout.Length * sizeof(T) >= StatisticsHalfWidthBytes);

    /// <summary>The input size from which <see cref="StatisticsWidth{T}"/> halves a width of 512 bits: 20 MiB.</summary>
    public const long StatisticsHalfWidthBytes = 20L << 20;

    /// <summary>
    /// The end of a training forward without batch renormalization. Its per-channel steps run in one pass over the
    /// channels (for wide, short batches they cost as much as the data pass): both moving statistics updated as
    /// <c>moving = moving * momentum + batch * (1 - momentum)</c> in double precision, rounded once; gamma widened into <paramref name="effectiveGamma"/> (the gamma the
    /// backward pass applies; 1 for scale=false), and the coefficients of
    /// <see cref="FoldCoefficients{TStat, TWeight, T}"/> from (mean, variance, gamma, beta). Then the data is mapped by
    /// <see cref="Affine{T}"/>. Each value has the bits those steps give run one after another. For the backward pass,
    /// <paramref name="inverseStddev"/> receives <c>1 / sqrt(variance + epsilon)</c> and <paramref name="center"/> the
    /// T-rounded mean, the values <see cref="InverseStddev"/> and <see cref="ChannelVector.Narrow{T}"/> give.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void TrainingNormalize<T>(
        ReadOnlySpan<T> x, Span<T> y, ChannelLayout layout, ReadOnlySpan<double> mean, ReadOnlySpan<double> variance,
        ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, Span<T> movingMean, Span<T> movingVariance, double momentum, double epsilon,
        Span<double> effectiveGamma, Span<double> inverseStddev, Span<T> center, VectorWidth width, int maxDegree = 1)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int channels = layout.Channels;
        T[]? rented = null;
        int length = CacheLine.ReadBesideLength<T>(3, channels, spread: channels > StackChannels);
        Span<T> buffer = channels <= StackChannels ? stackalloc T[length] : (rented = ArrayPool<T>.Shared.Rent(length));
        Span<int> starts = stackalloc int[3];
        CacheLine.PlaceReadBeside(buffer[..length], channels, channels > StackChannels, CacheLine.PageOffset(in MemoryMarshal.GetReference(y)), starts);
        try
        {
            Span<T> alignedCenter = buffer.Slice(starts[0], channels);
            Span<T> scale = buffer.Slice(starts[1], channels);
            Span<T> shift = buffer.Slice(starts[2], channels);
            TrainingChannelSteps(
                mean, variance, gamma, beta, movingMean, movingVariance, momentum, epsilon, effectiveGamma, inverseStddev, alignedCenter, scale, shift);
            alignedCenter.CopyTo(center);
            Affine(x, y, layout, alignedCenter, scale, shift, width, maxDegree);
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
    /// Whether a training forward over <paramref name="layout"/> without a mask or batch renormalization takes
    /// <see cref="SmallTrainingForward{T}"/>: a small batch (<see cref="IsSmallBatch{T}"/>) of at least one vector of
    /// channels at <paramref name="width"/>. It depends on the shape and the width only.
    /// </summary>
    internal static bool IsSmallTraining<T>(ChannelLayout layout, VectorWidth width)
        where T : unmanaged => IsSmallBatch<T>(layout) && layout.Channels >= VectorWidths.Lanes<T>(width);

    /// <summary>
    /// The whole training forward of a small batch (<see cref="IsSmallTraining{T}"/>) without a mask or renormalization:
    /// the two plain reads of <see cref="SmallMeansAndSquaredDeviations{T}"/> over every channel, then one vector of T's
    /// channels at a time from the variance division of <see cref="Moments{T}"/> through the steps of
    /// <see cref="TrainingChannelSteps{T}"/> to the affine map of <see cref="Affine{T}"/>, its coefficients rounded to T
    /// in registers rather than stored and read back. Every value has the bits of <see cref="BatchStatistics{T}"/>
    /// followed by <see cref="TrainingNormalize{T}"/> (each lane does the same operations in the same order), and
    /// <paramref name="mean"/> and <paramref name="variance"/> receive the batch statistics. The channels after the last
    /// whole vector go at the narrower widths, then one at a time. Returns the count per channel, the denominator of the
    /// statistics. <paramref name="y"/> may be <paramref name="x"/>: the statistics read every input before any output
    /// is written, and each element is read before it is written.
    /// </summary>
    /// <remarks>
    /// At these sizes a call is a chain of dependent steps (sums, mean, squared deviations, square root, division, the
    /// map), and every store and reload between the separate kernels, and every dispatch, lengthened it. The statistics
    /// stay one pass over all channels so that the chains of several vectors of channels overlap: with each vector's
    /// statistics taken inside its own step, float32 [8, 64] took 0.89-1.17 of the separate kernels' time (0.82-0.97 as it
    /// is). The layer's training forward against the separate kernels (thirty-fifth session; benchmarks/HISTORY.md):
    /// float32 [8, 16] 0.73-0.95, float64 [8, 16] 0.72-1.0, float32 [2, 1024] 0.63-0.92, float64 [8, 100] 0.69-0.82.
    /// Inlined into its one caller (the layer's small training call), so that its fifteen arguments do not go through
    /// the stack: float32 [8, 16] 0.71-0.93 of its time as a call, float64 0.90-0.95; [8, 20], [8, 24], float64 [8, 12],
    /// [4, 256], [2, 1024] and [16, 64] 0.75-1.10, no direction held (forty-first session). The backward's kernel,
    /// inlined the same way, took 1.03-1.20 of its time and stays a call.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double SmallTrainingForward<T>(
        ReadOnlySpan<T> x, Span<T> y, ChannelLayout layout, Span<double> mean, Span<double> variance,
        ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, Span<T> movingMean, Span<T> movingVariance, double momentum, double epsilon,
        Span<double> effectiveGamma, Span<double> inverseStddev, Span<T> center, VectorWidth width)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Debug.Assert(IsSmallTraining<T>(layout, width) && x.Length == layout.Length && y.Length == layout.Length);
        var steps = new TrainingStepsLoop<T>(
            mean, variance, gamma, beta, movingMean, movingVariance, momentum, epsilon, effectiveGamma, inverseStddev, center, default, default);
        ref T src = ref MemoryMarshal.GetReference(x);
        ref T dst = ref MemoryMarshal.GetReference(y);
        ref double mu = ref MemoryMarshal.GetReference(mean);
        ref double m2 = ref MemoryMarshal.GetReference(variance);
        ref T centre = ref MemoryMarshal.GetReference(center);
        int rows = layout.Outer;
        int channels = layout.Channels;
        SmallMeansAndSquaredDeviations(x, rows, channels, mean, variance, width);

        // Whole vectors at the width, then the channels left at each narrower width (the same bits at every width).
        int c = 0;
        if (width >= VectorWidth.Vector512)
        {
            c = SmallTrainingBlocks<Vector512<T>, Vector512Ops<T>, Vector512<double>, Vector512Ops<double>, T>(
                ref steps, ref src, ref dst, rows, channels, c, ref mu, ref m2, ref centre);
        }

        if (width >= VectorWidth.Vector256 && c < channels)
        {
            c = SmallTrainingBlocks<Vector256<T>, Vector256Ops<T>, Vector256<double>, Vector256Ops<double>, T>(
                ref steps, ref src, ref dst, rows, channels, c, ref mu, ref m2, ref centre);
        }

        if (width >= VectorWidth.Vector128 && c < channels)
        {
            c = SmallTrainingBlocks<Vector128<T>, Vector128Ops<T>, Vector128<double>, Vector128Ops<double>, T>(
                ref steps, ref src, ref dst, rows, channels, c, ref mu, ref m2, ref centre);
        }

        if (c < channels)
        {
            SmallTrainingBlocks<T, ScalarOps<T>, double, ScalarOps<double>, T>(ref steps, ref src, ref dst, rows, channels, c, ref mu, ref m2, ref centre);
        }

        return layout.CountPerChannel;
    }

    /// <summary>
    /// The vectors of channels of <see cref="SmallTrainingForward{T}"/> from <paramref name="start"/>, each of TVec's lanes
    /// (two double vectors for float, one for double); returns where it stopped. Not inlined: each width's copy gets the
    /// JIT's whole inlining budget. Inlined together, the narrower widths' vector operations were left as calls, and
    /// float32 [8, 24] (16 channels at 512 bits, 8 at 256) took 407 ns a call against 209 ns.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int SmallTrainingBlocks<TVec, TOps, TWide, TWideOps, T>(
        ref TrainingStepsLoop<T> steps, ref T x, ref T y, int rows, int channels, int start, ref double mean, ref double variance, ref T center)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where TWide : struct
        where TWideOps : IVectorOps<TWide, double>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        bool two = TOps.Count != TWideOps.Count;
        nuint half = (nuint)TWideOps.Count;
        nuint stride = (nuint)channels;
        TWide count = TWideOps.Broadcast(rows);
        TWide inverseCount = TWideOps.Broadcast(1.0 / rows);
        bool powerOfTwo = BitOperations.IsPow2(rows);
        int c = start;
        for (; c <= channels - TOps.Count; c += TOps.Count)
        {
            // The mean and M2 (in variance) are in; Moments' division.
            nuint i = (nuint)c;
            TWide m0 = TWideOps.Load(ref mean, i);
            TWide v0 = DivideExactly<TWide, TWideOps>(TWideOps.Load(ref variance, i), count, inverseCount, powerOfTwo);
            TWideOps.Store(v0, ref variance, i);
            TWide center0 = steps.Step<TWide, TWideOps>(m0, v0, i, out TWide scale0, out TWide shift0);
            TWide center1 = center0, scale1 = scale0, shift1 = shift0;
            if (two)
            {
                TWide m1 = TWideOps.Load(ref mean, i + half);
                TWide v1 = DivideExactly<TWide, TWideOps>(TWideOps.Load(ref variance, i + half), count, inverseCount, powerOfTwo);
                TWideOps.Store(v1, ref variance, i + half);
                center1 = steps.Step<TWide, TWideOps>(m1, v1, i + half, out scale1, out shift1);
            }

            TVec m = TOps.NarrowFrom(center0, center1);
            TVec a = TOps.NarrowFrom(scale0, scale1);
            TVec b = TOps.NarrowFrom(shift0, shift1);
            TOps.Store(m, ref center, i);
            for (int r = 0; r < rows; r++, i += stride)
            {
                TOps.Store(MapVector<TVec, TOps, T>(TOps.Load(ref x, i), m, a, b), ref y, i);
            }
        }

        return c;
    }

    /// <summary>The per-channel steps of <see cref="TrainingNormalize{T}"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void TrainingChannelSteps<T>(
        ReadOnlySpan<double> mean, ReadOnlySpan<double> variance, ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta,
        Span<T> movingMean, Span<T> movingVariance, double momentum, double epsilon,
        Span<double> effectiveGamma, Span<double> inverseStddev, Span<T> center, Span<T> scale, Span<T> shift)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var loop = new TrainingStepsLoop<T>(
            mean, variance, gamma, beta, movingMean, movingVariance, momentum, epsilon, effectiveGamma, inverseStddev, center, scale, shift);
        ChannelLoop.Run(ref loop);
    }

    /// <summary>The loop of <see cref="TrainingChannelSteps{T}"/>.</summary>
    private readonly ref struct TrainingStepsLoop<T>(
        ReadOnlySpan<double> mean, ReadOnlySpan<double> variance, ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta,
        Span<T> movingMean, Span<T> movingVariance, double momentum, double epsilon,
        Span<double> effectiveGamma, Span<double> inverseStddev, Span<T> center, Span<T> scale, Span<T> shift) : IChannelLoop
        where T : unmanaged
    {
        private readonly ReadOnlySpan<double> _mean = mean;
        private readonly ReadOnlySpan<double> _variance = variance;
        private readonly ReadOnlySpan<T> _gamma = gamma;
        private readonly ReadOnlySpan<T> _beta = beta;
        private readonly Span<T> _movingMean = movingMean;
        private readonly Span<T> _movingVariance = movingVariance;
        private readonly Span<double> _effectiveGamma = effectiveGamma;
        private readonly Span<double> _inverseStddev = inverseStddev;
        private readonly Span<T> _center = center;
        private readonly Span<T> _scale = scale;
        private readonly Span<T> _shift = shift;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Run<TVec, TOps>(int start)
            where TVec : struct
            where TOps : IVectorOps<TVec, double>
        {
            ref double mu = ref MemoryMarshal.GetReference(_mean);
            ref double var = ref MemoryMarshal.GetReference(_variance);
            int c = start;
            for (; c <= _mean.Length - TOps.Count; c += TOps.Count)
            {
                nuint i = (nuint)c;
                TVec roundedMean = Step<TVec, TOps>(TOps.Load(ref mu, i), TOps.Load(ref var, i), i, out TVec scale, out TVec shift);
                TOps.StoreNarrowed(roundedMean, ref MemoryMarshal.GetReference(_center), i);
                TOps.StoreNarrowed(scale, ref MemoryMarshal.GetReference(_scale), i);
                TOps.StoreNarrowed(shift, ref MemoryMarshal.GetReference(_shift), i);
            }

            return c;
        }

        /// <summary>
        /// The steps of the channels from <paramref name="i"/> given their mean <paramref name="m"/> and variance
        /// <paramref name="v"/>: the moving statistics, the effective gamma and the inverse standard deviation stored, and
        /// the coefficients of <see cref="FoldValues{TVec, TOps, T}"/> returned in double (the centre, then scale and shift).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TVec Step<TVec, TOps>(TVec m, TVec v, nuint i, out TVec scale, out TVec shift)
            where TVec : struct
            where TOps : IVectorOps<TVec, double>
        {
            ref T mm = ref MemoryMarshal.GetReference(_movingMean);
            ref T mv = ref MemoryMarshal.GetReference(_movingVariance);
            TVec keep = TOps.Broadcast(momentum);
            TVec take = TOps.Broadcast(1.0 - momentum);
            TVec one = TOps.Broadcast(1.0);
            TOps.StoreNarrowed(TOps.Add(TOps.Multiply(TOps.LoadWidened(ref mm, i), keep), TOps.Multiply(m, take)), ref mm, i);
            TOps.StoreNarrowed(TOps.Add(TOps.Multiply(TOps.LoadWidened(ref mv, i), keep), TOps.Multiply(v, take)), ref mv, i);
            TVec gc = _gamma.IsEmpty ? one : TOps.LoadWidened(ref MemoryMarshal.GetReference(_gamma), i);
            TOps.Store(gc, ref MemoryMarshal.GetReference(_effectiveGamma), i);
            TVec inverse = TOps.Divide(one, TOps.SquareRoot(TOps.Add(v, TOps.Broadcast(epsilon))));
            TOps.Store(inverse, ref MemoryMarshal.GetReference(_inverseStddev), i);
            TVec b = _beta.IsEmpty ? TOps.Zero : TOps.LoadWidened(ref MemoryMarshal.GetReference(_beta), i);
            return FoldValues<TVec, TOps, T>(m, inverse, gc, b, out scale, out shift);
        }
    }

    /// <summary>
    /// The affine weights a training forward applies after batch renormalization: <c>gamma' = r * gamma</c> and
    /// <c>beta' = d * gamma + beta</c> (r = 1 and d = 0 without renorm). An empty <paramref name="gamma"/> means 1,
    /// an empty <paramref name="beta"/> means 0.
    /// </summary>
    public static void EffectiveWeights<T>(
        ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, ReadOnlySpan<double> r, ReadOnlySpan<double> d, Span<double> effectiveGamma, Span<double> effectiveBeta)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var loop = new EffectiveWeightsLoop<T>(gamma, beta, r, d, effectiveGamma, effectiveBeta);
        ChannelLoop.Run(ref loop);
    }

    /// <summary>The loop of <see cref="EffectiveWeights{T}"/>.</summary>
    private readonly ref struct EffectiveWeightsLoop<T>(
        ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, ReadOnlySpan<double> r, ReadOnlySpan<double> d, Span<double> effectiveGamma, Span<double> effectiveBeta) : IChannelLoop
        where T : unmanaged
    {
        private readonly ReadOnlySpan<T> _gamma = gamma;
        private readonly ReadOnlySpan<T> _beta = beta;
        private readonly ReadOnlySpan<double> _r = r;
        private readonly ReadOnlySpan<double> _d = d;
        private readonly Span<double> _effectiveGamma = effectiveGamma;
        private readonly Span<double> _effectiveBeta = effectiveBeta;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Run<TVec, TOps>(int start)
            where TVec : struct
            where TOps : IVectorOps<TVec, double>
        {
            ref T gs = ref MemoryMarshal.GetReference(_gamma);
            ref T bs = ref MemoryMarshal.GetReference(_beta);
            ref double rs = ref MemoryMarshal.GetReference(_r);
            ref double ds = ref MemoryMarshal.GetReference(_d);
            ref double eg = ref MemoryMarshal.GetReference(_effectiveGamma);
            ref double eb = ref MemoryMarshal.GetReference(_effectiveBeta);
            TVec one = TOps.Broadcast(1.0);
            int c = start;
            for (; c <= _effectiveGamma.Length - TOps.Count; c += TOps.Count)
            {
                nuint i = (nuint)c;
                TVec g = _gamma.IsEmpty ? one : TOps.LoadWidened(ref gs, i);
                TVec b = _beta.IsEmpty ? TOps.Zero : TOps.LoadWidened(ref bs, i);
                TOps.Store(TOps.Multiply(TOps.Load(ref rs, i), g), ref eg, i);
                TOps.Store(TOps.Add(TOps.Multiply(TOps.Load(ref ds, i), g), b), ref eb, i);
            }

            return c;
        }
    }
}
