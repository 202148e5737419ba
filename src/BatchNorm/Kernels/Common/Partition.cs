using System;
using System.Numerics;

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
    /// (Chan et al.); <paramref name="m2"/> receives the total M2.
    /// </summary>
    public static void MergeParts(ReadOnlySpan<double> partMean, ReadOnlySpan<double> partM2, ReadOnlySpan<double> counts, int channels, Span<double> mean, Span<double> m2)
    {
        mean.Clear();
        m2.Clear();
        double n = 0;
        for (int part = 0; part < counts.Length; part++)
        {
            double nb = counts[part];
            double total = n + nb;
            double weight = nb / total;
            double cross = n * nb / total;
            ReadOnlySpan<double> pm = partMean.Slice(part * channels, channels);
            ReadOnlySpan<double> pv = partM2.Slice(part * channels, channels);
            int c = 0;
            if (Vector.IsHardwareAccelerated)
            {
                // The scalar loop below, a vector of channels at a time (same operations, same bits).
                var w = new Vector<double>(weight);
                var x = new Vector<double>(cross);
                for (; c <= channels - Vector<double>.Count; c += Vector<double>.Count)
                {
                    Vector<double> running = new(mean[c..]);
                    Vector<double> delta = new Vector<double>(pm[c..]) - running;
                    (running + (delta * w)).CopyTo(mean[c..]);
                    (new Vector<double>(m2[c..]) + (new Vector<double>(pv[c..]) + (delta * delta * x))).CopyTo(m2[c..]);
                }
            }

            for (; c < channels; c++)
            {
                double delta = pm[c] - mean[c];
                mean[c] += delta * weight;
                m2[c] += pv[c] + (delta * delta * cross);
            }

            n = total;
        }
    }
}

/// <summary>The body of an element-wise pass split by <see cref="Partition.ForElementwise{TBody}"/>.</summary>
internal interface IElementwiseBody
{
    /// <summary>Runs the pass on <paramref name="part"/>, which starts at <paramref name="element"/> of the whole input, at its channel <paramref name="channel"/> and mask position <paramref name="maskStart"/>.</summary>
    void Invoke(ChannelLayout part, nint element, int channel, nint maskStart);
}
