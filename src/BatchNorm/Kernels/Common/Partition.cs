using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace BatchNorm.Kernels;

/// <summary>
/// How a call is split across cores. The split depends on the shape only, never on the number of threads, so results
/// are bitwise identical whatever <c>maxDegree</c> is: reductions are merged in a fixed order.
/// </summary>
internal static class Partition
{
    /// <summary>Elements below which a call runs entirely on the calling thread, with no partition at all.</summary>
    public const int ParallelThreshold = 1 << 18;

    /// <summary>Elements per stripe of a channels-last reduction.</summary>
    public const int StripeElements = 1 << 16;

    public static bool IsLarge(ChannelLayout layout) => layout.Length >= ParallelThreshold;

    /// <summary>
    /// Fewest rows in a channels-last stripe. Each stripe costs per-channel work (clearing, a first block read twice,
    /// block merges, the final merge of the stripes), so wide rows need long stripes: at 32 rows of 2048 channels that
    /// overhead made the statistics pass 1.2-1.3x a memcpy, at 128 rows 0.9-1.0x.
    /// </summary>
    public const int MinStripeRows = 128;

    /// <summary>Rows per stripe of a channels-last layout: a multiple of 4 (the row-blocked kernels' unroll).</summary>
    public static int StripeRows(int channels) => Math.Max(MinStripeRows, (StripeElements / channels) & ~3);

    public static int StripeCount(ChannelLayout layout) => (layout.Outer + StripeRows(layout.Channels) - 1) / StripeRows(layout.Channels);

    /// <summary>The threads to use: <paramref name="maxDegree"/> (-1: every core), never more than the work items.</summary>
    public static int Degree(int maxDegree, int items) =>
        Math.Max(1, Math.Min(maxDegree <= 0 ? Environment.ProcessorCount : maxDegree, items));

    /// <summary>Runs <c>body.Invoke(i)</c> for items 0..count-1, on up to <paramref name="degree"/> threads (see <see cref="WorkerPool"/>).</summary>
    public static void For<TBody>(int count, int degree, in TBody body)
        where TBody : struct, IPartBody => WorkerPool.Run(count, degree, body);

    /// <summary>
    /// Splits an element-wise pass (every output depends on its own position only) into independent parts and runs
    /// <c>body.Invoke(part layout, first element, first channel, first mask position)</c> for each: channels last by
    /// rows, otherwise by outer index, or by channel when there is a single outer index.
    /// </summary>
    public static void ForElementwise<TBody>(ChannelLayout layout, int maxDegree, in TBody body)
        where TBody : struct, IElementwiseBody
    {
        int degree = IsLarge(layout) ? Degree(maxDegree, int.MaxValue) : 1;
        if (degree == 1)
        {
            body.Invoke(layout, 0, 0, 0);
            return;
        }

        bool byUnit = layout.IsChannelsLast || layout.Outer > 1;
        int units = byUnit ? layout.Outer : layout.Channels;
        int parts = Math.Min(units, 4 * degree);
        For(parts, degree, new ElementwiseParts<TBody>(body, layout, byUnit, units, parts));
    }

    /// <summary>One part of <see cref="ForElementwise{TBody}"/>: a run of outer indices (or of channels) of the layout.</summary>
    private readonly struct ElementwiseParts<TBody>(TBody body, ChannelLayout layout, bool byUnit, int units, int parts) : IPartBody
        where TBody : struct, IElementwiseBody
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int part)
        {
            int u0 = (int)((long)units * part / parts);
            int u1 = (int)((long)units * (part + 1) / parts);
            if (byUnit)
            {
                body.Invoke(layout with { Outer = u1 - u0 }, (nint)u0 * layout.Channels * layout.Inner, 0, (nint)u0 * layout.Inner);
            }
            else
            {
                body.Invoke(layout with { Channels = u1 - u0 }, (nint)u0 * layout.Inner, u0, 0);
            }
        }
    }

    /// <summary>
    /// Merges per-part (mean, M2) pairs over <paramref name="counts"/> elements into the total, in part order
    /// (Chan et al.); <paramref name="m2"/> receives the total M2. The first part merges into a mean and M2 of zero
    /// taken as constants (no clearing; the same operations, so the same bits).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MergeParts(ReadOnlySpan<double> partMean, ReadOnlySpan<double> partM2, ReadOnlySpan<double> counts, int channels, Span<double> mean, Span<double> m2)
    {
        ref double mu = ref MemoryMarshal.GetReference(mean);
        ref double sq = ref MemoryMarshal.GetReference(m2);
        double n = 0;
        for (int part = 0; part < counts.Length; part++)
        {
            double nb = counts[part];
            double total = n + nb;
            double weight = nb / total;
            double cross = n * nb / total;
            ref double pm = ref Unsafe.Add(ref MemoryMarshal.GetReference(partMean), part * channels);
            ref double pv = ref Unsafe.Add(ref MemoryMarshal.GetReference(partM2), part * channels);
            if (part == 0)
            {
                var loop = new MergePartLoop<BatchNormKernels.SwitchOn>(ref mu, ref sq, ref pm, ref pv, channels, weight, cross);
                ChannelLoop.Run(ref loop);
            }
            else
            {
                var loop = new MergePartLoop<BatchNormKernels.SwitchOff>(ref mu, ref sq, ref pm, ref pv, channels, weight, cross);
                ChannelLoop.Run(ref loop);
            }

            n = total;
        }
    }

    /// <summary>
    /// One part of <see cref="MergeParts"/>: <c>delta = partMean - mean</c>, <c>mean += delta * weight</c>,
    /// <c>M2 += partM2 + delta^2 * cross</c>, a zero running mean and M2 for the first part (<typeparamref name="TFirst"/>).
    /// </summary>
    private readonly ref struct MergePartLoop<TFirst>(
        ref double mean, ref double m2, ref double partMean, ref double partM2, int channels, double weight, double cross) : IChannelLoop
        where TFirst : struct, BatchNormKernels.ISwitch
    {
        private readonly ref double _mean = ref mean;
        private readonly ref double _m2 = ref m2;
        private readonly ref double _partMean = ref partMean;
        private readonly ref double _partM2 = ref partM2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Run<TVec, TOps>(int start)
            where TVec : struct
            where TOps : IVectorOps<TVec, double>
        {
            TVec w = TOps.Broadcast(weight);
            TVec x = TOps.Broadcast(cross);
            int c = start;
            for (; c <= channels - TOps.Count; c += TOps.Count)
            {
                nuint i = (nuint)c;
                TVec running = TFirst.On ? TOps.Zero : TOps.Load(ref _mean, i);
                TVec runningM2 = TFirst.On ? TOps.Zero : TOps.Load(ref _m2, i);
                TVec delta = TOps.Subtract(TOps.Load(ref _partMean, i), running);
                TOps.Store(TOps.Add(running, TOps.Multiply(delta, w)), ref _mean, i);
                TOps.Store(TOps.Add(runningM2, TOps.Add(TOps.Load(ref _partM2, i), TOps.Multiply(TOps.Multiply(delta, delta), x))), ref _m2, i);
            }

            return c;
        }
    }
}

/// <summary>The body of an element-wise pass split by <see cref="Partition.ForElementwise{TBody}"/>.</summary>
internal interface IElementwiseBody
{
    /// <summary>Runs the pass on <paramref name="part"/>, which starts at <paramref name="element"/> of the whole input, at its channel <paramref name="channel"/> and mask position <paramref name="maskStart"/>.</summary>
    void Invoke(ChannelLayout part, nint element, int channel, nint maskStart);
}
