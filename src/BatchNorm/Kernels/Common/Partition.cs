using System;
using System.Numerics;
using System.Threading.Tasks;

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

    /// <summary>Runs <paramref name="body"/> for items 0..count-1, on up to <paramref name="degree"/> threads.</summary>
    public static void For(int count, int degree, Action<int> body)
    {
        if (degree <= 1 || count <= 1)
        {
            for (int i = 0; i < count; i++)
            {
                body(i);
            }

            return;
        }

        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = degree }, body);
    }

    /// <summary>
    /// Splits an element-wise pass (every output depends on its own position only) into independent parts and runs
    /// <paramref name="body"/>(part layout, first element, first channel, first mask position) for each: channels last by
    /// rows, otherwise by outer index, or by channel when there is a single outer index.
    /// </summary>
    public static void ForElementwise(ChannelLayout layout, int maxDegree, Action<ChannelLayout, nint, int, nint> body)
    {
        int degree = IsLarge(layout) ? Degree(maxDegree, int.MaxValue) : 1;
        if (degree == 1)
        {
            body(layout, 0, 0, 0);
            return;
        }

        if (layout.IsChannelsLast || layout.Outer > 1)
        {
            int units = layout.Outer;
            int parts = Math.Min(units, 4 * degree);
            For(parts, degree, p =>
            {
                int u0 = (int)((long)units * p / parts);
                int u1 = (int)((long)units * (p + 1) / parts);
                body(layout with { Outer = u1 - u0 }, (nint)u0 * layout.Channels * layout.Inner, 0, (nint)u0 * layout.Inner);
            });
        }
        else
        {
            int parts = Math.Min(layout.Channels, 4 * degree);
            For(parts, degree, p =>
            {
                int c0 = (int)((long)layout.Channels * p / parts);
                int c1 = (int)((long)layout.Channels * (p + 1) / parts);
                body(layout with { Channels = c1 - c0 }, (nint)c0 * layout.Inner, c0, 0);
            });
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
