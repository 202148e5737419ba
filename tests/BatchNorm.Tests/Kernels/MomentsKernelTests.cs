using System;
using System.Linq;
using System.Numerics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using BatchNorm.Kernels;
using BatchNorm.Tests.Reference;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Kernels;

[Trait("Category", "Kernels")]
public class MomentsKernelTests
{
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Channels_last_matches_the_float64_reference_for_every_channel_count(int width)
    {
        ChannelsLast<float>((VectorWidth)width);
        ChannelsLast<double>((VectorWidth)width);
    }

    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Channels_first_matches_the_float64_reference_for_every_run_length(int width)
    {
        ChannelsFirst<float>((VectorWidth)width);
        ChannelsFirst<double>((VectorWidth)width);
    }

    /// <summary>
    /// The statistics' width on a 512-bit machine: 256 bits for channels-last rows wider than four 512-bit vectors from
    /// 20 MiB of input (5242880 float or 2621440 double elements); 512 bits below that size, and channels first.
    /// Every expected width is written out from that rule, at the threshold and one row below it.
    /// </summary>
    [Fact]
    public void Statistics_width_is_256_bits_only_for_wide_channels_last_rows_from_20_MiB()
    {
        (ChannelLayout Layout, bool IsFloat, VectorWidth Expected)[] cases =
        [
            (new ChannelLayout(5120, 1024, 1), true, VectorWidth.Vector256),    // 5242880 floats, wide rows
            (new ChannelLayout(5119, 1024, 1), true, VectorWidth.Vector512),    // one row short of the threshold
            (new ChannelLayout(81920, 64, 1), true, VectorWidth.Vector512),     // 64 float channels: four vectors
            (new ChannelLayout(65536, 80, 1), true, VectorWidth.Vector256),     // 80 float channels: five vectors
            (new ChannelLayout(65535, 80, 1), true, VectorWidth.Vector512),     // one row short
            (new ChannelLayout(40960, 64, 1), false, VectorWidth.Vector256),    // 64 double channels: eight vectors
            (new ChannelLayout(81920, 32, 1), false, VectorWidth.Vector512),    // 32 double channels: four vectors
            (new ChannelLayout(40959, 64, 1), false, VectorWidth.Vector512),    // one row short
            (new ChannelLayout(2, 64, 40960), true, VectorWidth.Vector512),     // channels first keeps 512 bits
            (new ChannelLayout(1, 3, 1 << 21), false, VectorWidth.Vector512),   // at any size
        ];
        KernelTestData.WidthRuleHolds(
            cases, BatchNormKernels.StatisticsWidth<float>, BatchNormKernels.StatisticsWidth<double>,
            new ChannelLayout(5120, 1024, 1), new ChannelLayout(65536, 80, 1));
    }

    /// <summary>
    /// Channels last with fewer channels than a vector: float rows are folded k at a time into super-rows of whole
    /// vectors (<see cref="ChannelFold"/>) and the k super-channels of each channel, then the remaining rows, are merged.
    /// Row counts below, at and above multiples of k, centred data and data far from zero, against the float64
    /// reference.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Few_channels_last_fold_rows_into_whole_vectors(int width)
    {
        foreach (int channels in new[] { 2, 3, 5, 7, 8, 12, 15 })
        {
            foreach (int rows in new[] { 1, 15, 16, 17, 40, 333, 5000 })
            {
                int[] shape = [rows, channels];
                foreach ((double offset, double spread) in new[] { (0.0, 1.0), (-3e4, 0.5) })
                {
                    double[] data = KernelTestData.Data(rows * channels, rows + channels, offset, spread);
                    Check<float>((VectorWidth)width, shape, 1, data);
                    Check<double>((VectorWidth)width, shape, 1, data);
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Statistics_stay_exact_across_many_blocks(int width)
    {
        // Channels last with several row blocks, channels first with runs longer than a block, one channel.
        foreach (int[] shape in new[] { new[] { 1000, 17 }, new[] { 300, 64 }, new[] { 2, 3, 9000 }, new[] { 9001, 1 }, new[] { 3, 1, 5000 } })
        {
            int axis = shape.Length == 2 ? 1 : 1;
            Check<float>((VectorWidth)width, shape, axis, KernelTestData.Data(Product(shape), 7, offset: 3, spread: 2));
            Check<double>((VectorWidth)width, shape, axis, KernelTestData.Data(Product(shape), 8, offset: 3, spread: 2));
        }
    }

    /// <summary>
    /// Blocks after the first are summed once around the running mean and read again only when that shift is too far
    /// from the block's own mean. Drifting data (the mean jumps by 1e4 after the first block and again later, with
    /// spread 1) must take the second read: summed around a shift 1e4 away, float32 squares of 1e8 would leave nothing
    /// of the within-block variance. That is visible in the total when the early part is a small fraction of the data
    /// (channels last, rows of at most four vectors: the first block is 16 rows); wide rows ([700, 100], and [2000, 17]
    /// at 128 bits) shift their long first block by the mean of its first 16 rows, 1e4 from the rest, and must read it
    /// again; the channels-first cases check that the drifting path is right, but there the first block is a whole run,
    /// and the bound cannot tell the two ways of summing apart.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Drifting_data_is_read_again_around_each_block_mean(int width)
    {
        var w = (VectorWidth)width;
        foreach (int[] shape in new[] { new[] { 3000, 5 }, new[] { 2000, 17 }, new[] { 700, 100 }, new[] { 4, 3, 5000 }, new[] { 2, 2, 40000 } })
        {
            int n = Product(shape);
            var random = new Random(n);
            var data = new double[n];
            for (int i = 0; i < n; i++)
            {
                // Channels last: by row; channels first: by outer index, and by position within the run.
                bool channelsLast = shape.Length == 2;
                int stage = channelsLast
                    ? (i / shape[1] < MinBlockRows ? 0 : i / shape[1] < 1000 ? 1 : 2)
                    : (i / (shape[1] * shape[2]) == 0 ? 0 : i % shape[2] < 20000 ? 1 : 2);
                data[i] = (stage == 0 ? 0 : stage == 1 ? 1e4 : -5e3) + ((random.NextDouble() * 2) - 1);
            }

            Check<float>(w, shape, 1, data);
            Check<double>(w, shape, 1, data);
        }
    }

    /// <summary>
    /// The same on wide rows from memory ([2100, 1000], 8.4 MB of float, over the prefetch threshold: split in stripes of
    /// <see cref="Partition.MinStripeRows"/> rows). Each stripe is one block, read once, four rows at a time, around the
    /// mean of the input's first 16 rows (computed once for all stripes). Here every stripe's first 16 rows sit 1e4 below
    /// the rest, so every block's mean is about 0.9e4 from that shift and the block is read again around its own mean. This checks the answer on that path; like the
    /// channels-first cases above, its bound cannot see a wrongly accepted shift (the 1e4 steps make the variance itself
    /// large). The once-read loop's own results are checked by the large-input tests in ParallelismTests (a row read
    /// twice there fails them).
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Drifting_wide_rows_from_memory_are_read_again(int width)
    {
        int[] shape = [2100, 1000];
        int n = Product(shape);
        Prefetch.IsWorthIt<float>(n, Prefetch.ForwardTensors).Should().Be(Sse.IsSupported);
        var random = new Random(11);
        var data = new double[n];
        for (int i = 0; i < n; i++)
        {
            bool stripeStart = (i / shape[1]) % Partition.MinStripeRows < MinBlockRows;
            data[i] = (stripeStart ? 0 : 1e4) + ((random.NextDouble() * 2) - 1);
        }

        Check<float>((VectorWidth)width, shape, 1, data);
        Check<double>((VectorWidth)width, shape, 1, data);
    }

    /// <summary>
    /// Channels first from memory read several channels' runs in one loop: runs of 8 KiB or more four at a time, channel
    /// c beside c + q, c + 2q and c + 3q (q = floor(C/4)), the channels left over in a pair and alone; shorter runs in
    /// pairs, channel c beside channel c + ceil(C/2), the middle one of an odd count alone. Each channel must get the bits
    /// it gets alone: the same channel cut out into a [outer, 1, inner] tensor of its own is the oracle, bit for bit, and
    /// the float64 reference bounds both. C = 7 (a quad, a pair and one alone) and 9 (two quads and one alone) on long
    /// runs, longer than a block (so a group shares several blocks); C = 7 on runs of 4000 bytes (pairs); and data that
    /// jumps by 1e4 in the later blocks (of the short runs: the later runs) of every third channel, so that in some groups
    /// one run is read again around its own block mean and the others are not.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Channels_first_from_memory_gives_each_channel_its_own_bits(int width)
    {
        Prefetch.IsWorthIt<double>(3 * 7 * 50021, Prefetch.ForwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<float>(2 * 9 * 116513, Prefetch.ForwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<double>(300 * 7 * 500, Prefetch.ForwardTensors).Should().Be(Sse.IsSupported);
        PairedChannels<double>((VectorWidth)width, [3, 7, 50021]);
        PairedChannels<float>((VectorWidth)width, [2, 9, 116513]);
        PairedChannels<double>((VectorWidth)width, [300, 7, 500]);
    }

    /// <summary>
    /// Channels-first runs shorter than <see cref="BatchNormKernels.ShortRunBytes"/> are summed a block of outer indices at
    /// a time (<see cref="BatchNormKernels.ShortRunBlockRuns"/> runs of each channel), by one of two walks: channel by
    /// channel, or in memory order with each channel's accumulators kept between its runs. Runs of 49 (three blocks of
    /// 334, 334 and 32 runs), 1000 (blocks of 16) and 16 elements (two blocks of 1024), runs shorter than a vector (5) and a
    /// double run of 1023 (8184 bytes, one block); the data jumps by 1e4 in the later runs of every third channel, and in
    /// channel 1 the first run lies 1e4 below the others, so that blocks are read again around their own mean, the first
    /// block too. For each: the float64 reference bounds the result; both walks give the same bits; and each channel gets
    /// the bits it gets alone, cut out into a [outer, 1, inner] tensor of its own.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Short_channels_first_runs_give_each_channel_its_own_bits_on_either_walk(int width)
    {
        var w = (VectorWidth)width;
        BatchNormKernels.ShortRunBlockRuns(new ChannelLayout(700, 3, 49)).Should().Be(334);
        BatchNormKernels.ShortRunBlockRuns(new ChannelLayout(40, 5, 1000)).Should().Be(16);
        BatchNormKernels.ShortRunBlockRuns(new ChannelLayout(1200, 2, 16)).Should().Be(1024);
        BatchNormKernels.HasShortRuns<double>(new ChannelLayout(9, 4, 1023)).Should().BeTrue();
        BatchNormKernels.HasShortRuns<double>(new ChannelLayout(9, 4, 1024)).Should().BeFalse();
        BatchNormKernels.HasShortRuns<float>(new ChannelLayout(1, 4, 100)).Should().BeFalse();
        ShortRuns<float>(w, [700, 3, 49]);
        ShortRuns<float>(w, [40, 5, 1000]);
        ShortRuns<float>(w, [1200, 2, 16]);
        ShortRuns<float>(w, [50, 3, 5]);
        ShortRuns<double>(w, [700, 3, 49]);
        ShortRuns<double>(w, [9, 4, 1023]);
    }

    private static void ShortRuns<T>(VectorWidth width, int[] shape)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int outer = shape[0], channels = shape[1], inner = shape[2];
        var random = new Random(outer + inner);
        var data = new double[outer * channels * inner];
        for (int i = 0; i < data.Length; i++)
        {
            int o = i / (channels * inner), c = i / inner % channels;
            double jump = (c % 3 == 2 && o >= outer / 2) || (c == 1 && o > 0) ? 1e4 : 0;
            data[i] = c + jump + (random.NextDouble() * 2) - 1;
        }

        Check<T>(width, shape, 1, data);
        T[] x = Tolerance.FromDouble<T>(data);
        var layout = new ChannelLayout(outer, channels, inner);
        string what = $"{typeof(T).Name} {width} [{string.Join(", ", shape)}]";
        var mean = new double[channels];
        var variance = new double[channels];
        BatchNormKernels.Moments<T>(x, layout, mean, variance, width);
        var walks = new double[2][];
        var walkM2 = new double[2][];
        for (int walk = 0; walk < 2; walk++)
        {
            walks[walk] = new double[channels];
            walkM2[walk] = new double[channels];
            BatchNormKernels.ShortRunMoments<T>(x, layout, 0, channels, walks[walk], walkM2[walk], width, prefetch: false, byChannel: walk == 1);
        }

        for (int c = 0; c < channels; c++)
        {
            Bits(walks[1][c]).Should().Be(Bits(walks[0][c]), $"{what}: the mean of channel {c} by channel and in memory order");
            Bits(walkM2[1][c]).Should().Be(Bits(walkM2[0][c]), $"{what}: M2 of channel {c} by channel and in memory order");
            Bits(mean[c]).Should().Be(Bits(walks[0][c]), $"{what}: the mean of channel {c}, through Moments");
            Bits(variance[c]).Should().Be(Bits(walkM2[0][c] / (outer * inner)), $"{what}: the variance of channel {c}, through Moments");

            var alone = new T[outer * inner];
            for (int o = 0; o < outer; o++)
            {
                x.AsSpan(((o * channels) + c) * inner, inner).CopyTo(alone.AsSpan(o * inner));
            }

            var aloneMean = new double[1];
            var aloneVariance = new double[1];
            BatchNormKernels.Moments<T>(alone, new ChannelLayout(outer, 1, inner), aloneMean, aloneVariance, width);
            Bits(mean[c]).Should().Be(Bits(aloneMean[0]), $"{what}: the mean of channel {c} alone");
            Bits(variance[c]).Should().Be(Bits(aloneVariance[0]), $"{what}: the variance of channel {c} alone");
        }
    }

    internal static long Bits(double value) => BitConverter.DoubleToInt64Bits(value);

    private static void PairedChannels<T>(VectorWidth width, int[] shape)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int outer = shape[0], channels = shape[1], inner = shape[2];
        var random = new Random(inner);
        var data = new double[outer * channels * inner];
        for (int i = 0; i < data.Length; i++)
        {
            int o = i / (channels * inner), c = i / inner % channels, j = i % inner;
            bool later = inner > 20000 ? o > 0 && j >= 20000 : o >= outer / 2; // later blocks of a long run, or later runs
            data[i] = c + (c % 3 == 1 && later ? 1e4 : 0) + (random.NextDouble() * 2) - 1;
        }

        Check<T>(width, shape, 1, data);
        T[] x = Tolerance.FromDouble<T>(data);
        var mean = new double[channels];
        var variance = new double[channels];
        BatchNormKernels.Moments<T>(x, ChannelLayout.FromShape(shape, 1), mean, variance, width);
        for (int c = 0; c < channels; c++)
        {
            var alone = new T[outer * inner];
            for (int o = 0; o < outer; o++)
            {
                x.AsSpan(((o * channels) + c) * inner, inner).CopyTo(alone.AsSpan(o * inner));
            }

            var aloneMean = new double[1];
            var aloneVariance = new double[1];
            BatchNormKernels.Moments<T>(alone, new ChannelLayout(outer, 1, inner), aloneMean, aloneVariance, width);
            string because = $"{typeof(T).Name} {width} [{string.Join(", ", shape)}] channel {c}";
            BitConverter.DoubleToInt64Bits(mean[c]).Should().Be(BitConverter.DoubleToInt64Bits(aloneMean[0]), because);
            BitConverter.DoubleToInt64Bits(variance[c]).Should().Be(BitConverter.DoubleToInt64Bits(aloneVariance[0]), because);
        }
    }

    /// <summary>
    /// Rows wider than a tile of <see cref="BatchNormKernels.WideTileBytes"/> per accumulator array are summed a tile of
    /// channels at a time. Every channel and row must be counted exactly once across the tiles, the vector tail of
    /// channels and the rows left over from groups of four: in cache ([37, 1100], [3, 2100]) and from memory
    /// ([1926, 1100]: prefetched stripes, the last one 6 rows long; checked to be over the threshold), against the float64
    /// reference.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Rows_wider_than_a_tile_count_every_element_once(int width)
    {
        Prefetch.IsWorthIt<float>(1926 * 1100, Prefetch.ForwardTensors).Should().Be(Sse.IsSupported);
        foreach (int[] shape in new[] { new[] { 37, 1100 }, new[] { 3, 2100 }, new[] { 1926, 1100 } })
        {
            Check<float>((VectorWidth)width, shape, 1, KernelTestData.Data(Product(shape), shape[0], offset: 2, spread: 3));
            Check<double>((VectorWidth)width, shape, 1, KernelTestData.Data(Product(shape), shape[0] + 1, offset: 2, spread: 3));
        }
    }

    /// <summary>
    /// The mean of a wide block's rows from memory (the shift of a stripe's first block, or of a block read again) reads
    /// four rows at once but must add each channel's rows in row order, as one row at a time did: against a plain loop,
    /// bit for bit, at every width, over all rows and over listed rows (a mask's), with 16 and 19 rows (groups of four and
    /// rows left over) and channel counts with and without a remainder of a vector.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Wide_means_from_memory_add_the_rows_in_row_order(int width)
    {
        foreach (int channels in new[] { 64, 100, 2051 })
        {
            foreach (int count in new[] { 16, 19 })
            {
                RowOrderMean<float>((VectorWidth)width, channels, count);
                RowOrderMean<double>((VectorWidth)width, channels, count);
            }
        }
    }

    private static void RowOrderMean<T>(VectorWidth width, int channels, int count)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        // Values of mixed sign and size, so that the order of the additions shows in the last bits.
        const int rows = 40;
        var random = new Random((channels * 100) + count);
        T[] x = Tolerance.FromDouble<T>(Enumerable.Range(0, rows * channels)
            .Select(_ => Math.Pow(10, random.Next(-3, 4)) * ((random.NextDouble() * 2) - 1)).ToArray());
        int[] listed = Enumerable.Range(0, rows).Where(r => r % 3 != 1).ToArray();
        foreach (bool all in new[] { true, false })
        {
            // Rows r0 .. r0 + count - 1 of the selection, r0 = 2.
            const int r0 = 2;
            var expected = new T[channels];
            for (int c = 0; c < channels; c++)
            {
                T sum = T.Zero;
                for (int r = r0; r < r0 + count; r++)
                {
                    sum += x[((all ? r : listed[r]) * channels) + c];
                }

                expected[c] = sum * (T.One / T.CreateTruncating(count));
            }

            var shift = new T[channels];
            if (all)
            {
                BlockMean(width, x, new BatchNormKernels.AllRows(rows), r0, count, channels, shift);
            }
            else
            {
                BlockMean(width, x, new BatchNormKernels.SelectedRows(listed), r0, count, channels, shift);
            }

            for (int c = 0; c < channels; c++)
            {
                shift[c].Should().Be(expected[c], $"{typeof(T).Name} {width} C = {channels}, {count} rows, {(all ? "all rows" : "listed rows")}, channel {c}");
            }
        }
    }

    private static void BlockMean<T, TRows>(VectorWidth width, T[] x, TRows rows, int r0, int count, int channels, T[] shift)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TRows : BatchNormKernels.IRowSelection, allows ref struct
    {
        switch (width)
        {
            case VectorWidth.Vector512:
                BatchNormKernels.WideBlockMean<Vector512<T>, Vector512Ops<T>, T, TRows>(ref x[0], rows, r0, count, channels, ref shift[0], prefetch: true);
                break;
            case VectorWidth.Vector256:
                BatchNormKernels.WideBlockMean<Vector256<T>, Vector256Ops<T>, T, TRows>(ref x[0], rows, r0, count, channels, ref shift[0], prefetch: true);
                break;
            case VectorWidth.Vector128:
                BatchNormKernels.WideBlockMean<Vector128<T>, Vector128Ops<T>, T, TRows>(ref x[0], rows, r0, count, channels, ref shift[0], prefetch: true);
                break;
            default:
                BatchNormKernels.WideBlockMean<T, ScalarOps<T>, T, TRows>(ref x[0], rows, r0, count, channels, ref shift[0], prefetch: true);
                break;
        }
    }

    private const int MinBlockRows = 16; // the first channels-last block (narrow rows), or the rows its shift comes from (wide)

    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Hard_data_keeps_float32_statistics_close_to_the_exact_values(int width)
    {
        var w = (VectorWidth)width;
        // [300, 100] is wide rows at every width: one block shifted by the mean of its first 16 rows.
        foreach (int[] shape in new[] { new[] { 4096, 3 }, new[] { 512, 20 }, new[] { 300, 100 }, new[] { 8, 5, 700 }, new[] { 5000, 1 } })
        {
            int n = Product(shape);
            // mean 1e4, std 1: E[x^2] - E[x]^2 in float32 would lose every digit here.
            Check<float>(w, shape, 1, Gaussian(n, 1, 1e4, 1));
            // std 1e-4 around 1.
            Check<float>(w, shape, 1, Gaussian(n, 2, 1, 1e-4));
            // Constant channels: the variance must be (essentially) zero and never negative.
            Check<float>(w, shape, 1, Enumerable.Repeat(12345.678, n).ToArray());
            Check<float>(w, shape, 1, Enumerable.Repeat(-0.1, n).ToArray());
            // Values near 1e18.
            Check<float>(w, shape, 1, Gaussian(n, 3, 1e18, 1e16));
            Check<double>(w, shape, 1, Gaussian(n, 4, 1e4, 1));
            Check<double>(w, shape, 1, Gaussian(n, 5, 1e18, 1e15));
        }
    }

    /// <summary>
    /// Wide channels-last rows in cache whose length is a whole number of vectors all start at one phase; the shifted sums
    /// then walk them in aligned vectors from it and cover each row's first <c>phase</c> and last <c>width - phase</c>
    /// channels with a masked vector at each end. Every input phase (0 to 16 elements past a 64-byte boundary), rows of
    /// 80 to 2048 channels (two tiles at 2048 floats), blocks ending in rows left over from groups of four, and data
    /// drifting across the rows (so that blocks are read again around their own means): the scalar path's bits, and the
    /// float64 reference.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Wide_rows_sharing_a_phase_are_summed_in_aligned_vectors_with_the_scalar_bits(int width)
    {
        foreach (int[] shape in new[] { new[] { 8, 80 }, new[] { 17, 96 }, new[] { 130, 256 }, new[] { 37, 1024 }, new[] { 21, 2048 } })
        {
            foreach (bool drift in new[] { false, true })
            {
                for (int offset = 0; offset <= 16; offset++)
                {
                    PhasedMoments<float>((VectorWidth)width, shape, offset, drift);
                    PhasedMoments<double>((VectorWidth)width, shape, offset, drift);
                }
            }
        }
    }

    /// <summary>
    /// A striped pass reads its stripes last to first, or first to last when told that the pass after it starts on the
    /// last rows; the stripes are merged in one order either way. Several stripes of wide, narrow and phased rows, in
    /// cache and not, on one thread and two: both orders give the same bits, within the float64 reference's bound.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Stripes_read_first_to_last_give_the_same_bits_as_last_to_first(int width)
    {
        var w = (VectorWidth)width;
        foreach (int[] shape in new[] { new[] { 300, 1024 }, new[] { 3000, 96 }, new[] { 4200, 64 }, new[] { 450, 1000 } })
        {
            double[] data = KernelTestData.Data(Product(shape), shape[0], offset: 5, spread: 2);
            StripeOrders<float>(w, shape, data);
            StripeOrders<double>(w, shape, data);
        }
    }

    private static void StripeOrders<T>(VectorWidth width, int[] shape, double[] data)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        T[] x = Tolerance.FromDouble<T>(data);
        var (expectedMean, expectedVariance) = ReferenceBatchNorm.Moments(Tolerance.ToDouble<T>(x), shape, 1);
        var layout = ChannelLayout.FromShape(shape, 1);
        Partition.IsLarge(layout).Should().BeTrue("the shape is striped");
        var mean = new double[shape[1]];
        var variance = new double[shape[1]];
        BatchNormKernels.Moments<T>(x, layout, mean, variance, width);
        string what = $"{typeof(T).Name} {width} [{string.Join(", ", shape)}]";
        AssertMoments<T>(mean, variance, expectedMean, expectedVariance, shape[0], what);
        foreach (int degree in new[] { 1, 2 })
        {
            var forwardMean = new double[shape[1]];
            var forwardVariance = new double[shape[1]];
            BatchNormKernels.Moments<T>(x, layout, forwardMean, forwardVariance, width, degree, endOnLastRows: true);
            forwardMean.Should().Equal(mean, $"{what}, {degree} threads, first to last");
            forwardVariance.Should().Equal(variance, $"{what}, {degree} threads, first to last");
        }
    }

    /// <summary>
    /// Small channels-last batches (at most 8 rows of float or 16 of double, at most 16 KiB) take two plain reads in double
    /// precision. Written out at the edges: the row limit and one row past it, the byte limit and one channel past it,
    /// and channels first, which never does.
    /// </summary>
    [Fact]
    public void Small_batches_are_at_most_8_rows_of_float_or_16_of_double_and_16_KiB()
    {
        (ChannelLayout Layout, bool Float, bool Double)[] cases =
        [
            (new ChannelLayout(8, 16, 1), true, true),
            (new ChannelLayout(9, 16, 1), false, true),
            (new ChannelLayout(16, 16, 1), false, true),
            (new ChannelLayout(17, 16, 1), false, false),
            (new ChannelLayout(1, 1, 1), true, true),
            (new ChannelLayout(2, 2048, 1), true, false),   // 16 KiB of float, 32 KiB of double
            (new ChannelLayout(2, 2049, 1), false, false),  // 16 KiB and 8 bytes of float
            (new ChannelLayout(2, 1024, 1), true, true),    // 16 KiB of double
            (new ChannelLayout(2, 1025, 1), true, false),   // 16 KiB and 16 bytes of double
            (new ChannelLayout(16, 128, 1), false, true),   // 16 KiB of double
            (new ChannelLayout(2, 16, 8), false, false),    // channels first
        ];
        foreach (var (layout, isFloat, isDouble) in cases)
        {
            BatchNormKernels.IsSmallBatch<float>(layout).Should().Be(isFloat, $"float {layout}");
            BatchNormKernels.IsSmallBatch<double>(layout).Should().Be(isDouble, $"double {layout}");
        }
    }

    /// <summary>
    /// A small batch's statistics are two reads in double precision, the same operations on every lane: the bits of the
    /// scalar path at every width, and within double precision's bound of the float64 reference (for float input too,
    /// which the reads widen exactly). Every row count of a small batch, channel counts around every width and up to the
    /// byte limit, data far from zero and, in some channels, every value the same (a variance of exactly zero).
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Small_batches_are_two_reads_in_double_with_the_scalar_bits(int width)
    {
        int seed = 500;
        foreach (int channels in KernelTestData.SizesAroundWidths(40).Concat([64, 100, 256, 1024, 2048]))
        {
            for (int rows = 1; rows <= 16; rows++)
            {
                SmallMoments<float>((VectorWidth)width, rows, channels, seed, offset: 1e3, spread: 1);
                SmallMoments<double>((VectorWidth)width, rows, channels, seed++, offset: -3e4, spread: 0.5);
            }
        }
    }

    private static void SmallMoments<T>(VectorWidth width, int rows, int channels, int seed, double offset, double spread)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var layout = new ChannelLayout(rows, channels, 1);
        if (!BatchNormKernels.IsSmallBatch<T>(layout))
        {
            return;
        }

        int[] shape = [rows, channels];
        double[] data = KernelTestData.Data(rows * channels, seed, offset, spread);
        int constant = 3 % channels;
        for (int r = 0; r < rows; r++)
        {
            data[(r * channels) + constant] = offset + 0.25; // one value throughout the channel
        }

        T[] x = Tolerance.FromDouble<T>(data);
        var scalarMean = new double[channels];
        var scalarVariance = new double[channels];
        BatchNormKernels.Moments<T>(x, layout, scalarMean, scalarVariance, VectorWidth.Scalar);
        var mean = new double[channels];
        var variance = new double[channels];
        BatchNormKernels.Moments<T>(x, layout, mean, variance, width);

        string what = $"small {typeof(T).Name} {width} [{rows}, {channels}]";
        mean.Should().Equal(scalarMean, what);
        variance.Should().Equal(scalarVariance, what);
        var (expectedMean, expectedVariance) = ReferenceBatchNorm.Moments(Tolerance.ToDouble<T>(x), shape, 1);
        AssertMoments<double>(mean, variance, expectedMean, expectedVariance, rows, what);
        variance[constant].Should().Be(0.0, $"the constant channel {constant} of {what}");
    }

    private static void PhasedMoments<T>(VectorWidth width, int[] shape, int offset, bool drift)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = Product(shape);
        int channels = shape[1];
        double[] data = KernelTestData.Data(n, n + offset, offset: 2, spread: 3);
        if (drift)
        {
            for (int i = 0; i < n; i++)
            {
                data[i] += 40.0 * (i / channels);
            }
        }

        T[] x = Tolerance.FromDouble<T>(data);
        var layout = ChannelLayout.FromShape(shape, 1);
        var scalarMean = new double[channels];
        var scalarVariance = new double[channels];
        BatchNormKernels.Moments<T>(x, layout, scalarMean, scalarVariance, VectorWidth.Scalar);

        // The input `offset` elements past a 64-byte boundary.
        T[] buffer = GC.AllocateArray<T>(n + 64, pinned: true);
        int aligned = KernelTestData.ElementsToLine(buffer);
        Span<T> input = buffer.AsSpan(aligned + offset, n);
        x.CopyTo(input);
        var mean = new double[channels];
        var variance = new double[channels];
        BatchNormKernels.Moments<T>(input, layout, mean, variance, width);

        string what = $"{typeof(T).Name} {width} [{string.Join(", ", shape)}] offset {offset}{(drift ? ", drifting" : string.Empty)}";
        mean.Should().Equal(scalarMean, what);
        variance.Should().Equal(scalarVariance, what);
        var (expectedMean, expectedVariance) = ReferenceBatchNorm.Moments(Tolerance.ToDouble<T>(x), shape, 1);
        AssertMoments<T>(mean, variance, expectedMean, expectedVariance, shape[0], what);
    }

    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Kernels_never_touch_memory_outside_their_spans(int width)
    {
        var w = (VectorWidth)width;
        foreach (bool guardAfter in new[] { true, false })
        {
            foreach (int size in KernelTestData.SizesAroundWidths(40))
            {
                GuardedMoments<float>(w, [3, size], 1, guardAfter);
                GuardedMoments<float>(w, [2, 3, size], 1, guardAfter);
                GuardedMoments<double>(w, [3, size], 1, guardAfter);
                GuardedMoments<double>(w, [2, 3, size], 1, guardAfter);
            }
        }
    }

    private static void ChannelsLast<T>(VectorWidth width)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int seed = 0;
        foreach (int channels in KernelTestData.SizesAroundWidths(70).Append(100))
        {
            foreach (int rows in new[] { 1, 2, 3, 17, 70 })
            {
                Check<T>(width, [rows, channels], 1, KernelTestData.Data(rows * channels, seed++, offset: 2, spread: 3));
            }
        }
    }

    private static void ChannelsFirst<T>(VectorWidth width)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int seed = 100;
        foreach (int inner in KernelTestData.SizesAroundWidths(140))
        {
            foreach (int[] outerAndChannels in new[] { new[] { 1, 1 }, new[] { 1, 3 }, new[] { 2, 5 }, new[] { 3, 17 } })
            {
                int[] shape = [outerAndChannels[0], outerAndChannels[1], inner];
                Check<T>(width, shape, 1, KernelTestData.Data(Product(shape), seed++, offset: -1, spread: 2));
            }
        }
    }

    private static void Check<T>(VectorWidth width, int[] shape, int axis, double[] data)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        T[] x = Tolerance.FromDouble<T>(data);
        double[] exact = Tolerance.ToDouble<T>(x); // the reference sees exactly the values the kernel sees
        var (expectedMean, expectedVariance) = ReferenceBatchNorm.Moments(exact, shape, axis);
        var layout = ChannelLayout.FromShape(shape, axis);
        var mean = new double[shape[axis]];
        var variance = new double[shape[axis]];

        BatchNormKernels.Moments<T>(x, layout, mean, variance, width);

        AssertMoments<T>(mean, variance, expectedMean, expectedVariance, Product(shape) / shape[axis], $"{typeof(T).Name} {width} shape [{string.Join(", ", shape)}]");
    }

    /// <summary>
    /// Mean within k ulps (of T) of the standard deviation, plus the rounding of the mean itself; variance within k ulps
    /// relative, plus the double rounding of block means in the merge (eps_double * |mean| * std), plus the squared
    /// quantum of the data's magnitude; k = 32 + 4 sqrt(n) because the rounding error of
    /// blocked summation grows like sqrt(n). Variance never negative. (E[x^2] - E[x]^2 in float32 misses these bounds
    /// by orders of magnitude on the hard data: for mean 1e4 and std 1 its variance error is of order 1.)
    /// </summary>
    internal static void AssertMoments<T>(double[] mean, double[] variance, double[] expectedMean, double[] expectedVariance, int countPerChannel, string what)
    {
        double eps = (32 + (4 * Math.Sqrt(countPerChannel))) * Tolerance.Epsilon<T>();
        double quantum = Tolerance.Epsilon<T>();
        double tiny = Math.Max(quantum * quantum, Math.Pow(2, -52));
        for (int c = 0; c < mean.Length; c++)
        {
            double std = Math.Sqrt(expectedVariance[c]);
            double q = quantum * Math.Abs(expectedMean[c]);
            Math.Abs(mean[c] - expectedMean[c]).Should().BeLessThanOrEqualTo(
                (eps * std) + (8 * tiny * Math.Abs(expectedMean[c])) + 1e-300, $"mean[{c}] of {what}");
            Math.Abs(variance[c] - expectedVariance[c]).Should().BeLessThanOrEqualTo(
                (eps * expectedVariance[c]) + (8 * Math.Pow(2, -52) * Math.Abs(expectedMean[c]) * std) + (4 * q * q) + 1e-300,
                $"variance[{c}] of {what}");
            variance[c].Should().BeGreaterThanOrEqualTo(0, $"variance[{c}] of {what}");
        }
    }

    private static void GuardedMoments<T>(VectorWidth width, int[] shape, int axis, bool guardAfter)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = Product(shape);
        using var buffer = new GuardedBuffer<T>(n, guardAfter);
        double[] data = KernelTestData.Data(n, n, offset: 1, spread: 1);
        Tolerance.FromDouble<T>(data).CopyTo(buffer.Span);
        double[] exact = Tolerance.ToDouble<T>(buffer.Span);
        var (expectedMean, expectedVariance) = ReferenceBatchNorm.Moments(exact, shape, axis);
        var mean = new double[shape[axis]];
        var variance = new double[shape[axis]];

        var layout = ChannelLayout.FromShape(shape, axis);
        BatchNormKernels.Moments<T>(buffer.Span, layout, mean, variance, width);

        string what = $"guarded {typeof(T).Name} {width} [{string.Join(", ", shape)}]";
        AssertMoments<T>(mean, variance, expectedMean, expectedVariance, n / shape[axis], what);
        if (BatchNormKernels.HasShortRuns<T>(layout))
        {
            // Both short-run walks, whichever the default took: in memory order the last vector of each run is masked.
            foreach (bool byChannel in new[] { false, true })
            {
                var walkMean = new double[layout.Channels];
                var walkM2 = new double[layout.Channels];
                BatchNormKernels.ShortRunMoments<T>(buffer.Span, layout, 0, layout.Channels, walkMean, walkM2, width, prefetch: false, byChannel);
                walkMean.Should().Equal(mean, $"{what}, by channel {byChannel}");
            }
        }
    }

    internal static double[] Gaussian(int n, int seed, double mean, double std)
    {
        var random = new Random(seed);
        var x = new double[n];
        for (int i = 0; i < n; i++)
        {
            double z = Math.Sqrt(-2.0 * Math.Log(1.0 - random.NextDouble())) * Math.Cos(2.0 * Math.PI * random.NextDouble());
            x[i] = mean + (std * z);
        }

        return x;
    }

    internal static int Product(int[] shape) => shape.Aggregate(1, (a, b) => a * b);
}
