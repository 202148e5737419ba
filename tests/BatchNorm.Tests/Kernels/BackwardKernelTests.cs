using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using BatchNorm.Kernels;
using BatchNorm.Tests.Reference;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Kernels;

[Trait("Category", "Kernels")]
public class BackwardKernelTests
{
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Gradient_sums_match_float64_sums_for_every_size_and_layout(int width)
    {
        foreach (int size in KernelTestData.SizesAroundWidths(70))
        {
            foreach (int[] shape in new[] { new[] { 3, size }, new[] { 2, 3, size }, new[] { 2, size, 5 }, new[] { 300, size % 20 + 1 }, new[] { 1, 2, 5000 + size } })
            {
                Sums<float>((VectorWidth)width, shape);
                Sums<double>((VectorWidth)width, shape);
            }
        }
    }

    /// <summary>
    /// Channels first from memory, the gradient sums read two channels' runs in one loop, channel c beside channel
    /// c + ceil(C/2), the middle one of an odd count alone. Each channel must get the bits it gets alone (the channel cut
    /// out into an [outer, 1, inner] tensor of its own), on one thread and on two (channel groups, paired within each),
    /// and the float64 sums bound the result. Runs are longer than a block.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Channels_first_gradient_sums_from_memory_give_each_channel_its_own_bits(int width)
    {
        Prefetch.IsWorthIt<double>(3 * 5 * 46604, Prefetch.BackwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<float>(2 * 7 * 99865, Prefetch.BackwardTensors).Should().Be(Sse.IsSupported);
        PairedChannelSums<double>((VectorWidth)width, [3, 5, 46604]);
        PairedChannelSums<float>((VectorWidth)width, [2, 7, 99865]);
    }

    /// <summary>
    /// Channels-first runs shorter than <see cref="BatchNormKernels.ShortRunBytes"/>: the gradient sums take a block of
    /// runs of a channel at a time, channel by channel or in memory order (<see cref="BatchNormKernels.ShortRunGradientSums"/>).
    /// Runs of 49 (three blocks), 1000 (blocks of 16), 16 (two blocks of 1024) and 5 elements (shorter than a vector),
    /// and a double run of 1023: the float64 sums bound the result, both walks give the same bits (also with x and dy
    /// against a guard page), and each channel the bits it gets alone, on one thread and on two.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Short_channels_first_runs_give_each_channel_its_own_gradient_sums_on_either_walk(int width)
    {
        var w = (VectorWidth)width;
        foreach (int[] shape in new[] { new[] { 700, 3, 49 }, new[] { 40, 5, 1000 }, new[] { 1200, 2, 16 }, new[] { 50, 3, 5 } })
        {
            ShortRunSums<float>(w, shape);
        }

        ShortRunSums<double>(w, [700, 3, 49]);
        ShortRunSums<double>(w, [9, 4, 1023]);
    }

    private static void ShortRunSums<T>(VectorWidth width, int[] shape)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        PairedChannelSums<T>(width, shape);
        int channels = shape[1], n = MomentsKernelTests.Product(shape);
        var layout = ChannelLayout.FromShape(shape, 1);
        T[] x = Tolerance.FromDouble<T>(KernelTestData.Data(n, 17, offset: 2, spread: 3));
        T[] dy = Tolerance.FromDouble<T>(KernelTestData.Data(n, 18, offset: 0, spread: 1));
        T[] center = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 19, offset: 2, spread: 1));
        var sums = new double[4][];
        for (int walk = 0; walk < 2; walk++)
        {
            sums[2 * walk] = new double[channels];
            sums[(2 * walk) + 1] = new double[channels];
            BatchNormKernels.ShortRunGradientSums<T>(x, dy, layout, 0, channels, center, sums[2 * walk], sums[(2 * walk) + 1], width, prefetch: false, byChannel: walk == 1);
        }

        var sum1 = new double[channels];
        var sum2 = new double[channels];
        BatchNormKernels.GradientSums<T>(x, dy, layout, center, sum1, sum2, width);
        string what = $"{typeof(T).Name} {width} [{string.Join(", ", shape)}]";
        // Both walks again with x and dy against a guard page, after their last element and before their first (a load
        // past a run's end crashes the test host), and the same bits.
        foreach (bool guardAfter in new[] { true, false })
        {
            using var xs = new GuardedBuffer<T>(n, guardAfter);
            using var gs = new GuardedBuffer<T>(n, guardAfter);
            x.CopyTo(xs.Span);
            dy.CopyTo(gs.Span);
            foreach (bool byChannel in new[] { false, true })
            {
                var g1 = new double[channels];
                var g2 = new double[channels];
                BatchNormKernels.ShortRunGradientSums<T>(xs.Span, gs.Span, layout, 0, channels, center, g1, g2, width, prefetch: false, byChannel);
                g1.Should().Equal(sums[0], $"{what}, guarded, by channel {byChannel}");
                g2.Should().Equal(sums[1], $"{what}, guarded, by channel {byChannel}");
            }
        }

        for (int c = 0; c < channels; c++)
        {
            MomentsKernelTests.Bits(sums[2][c]).Should().Be(MomentsKernelTests.Bits(sums[0][c]), $"{what}: sum(dy) of channel {c} by channel and in memory order");
            MomentsKernelTests.Bits(sums[3][c]).Should().Be(MomentsKernelTests.Bits(sums[1][c]), $"{what}: sum(dy (x - m)) of channel {c} by channel and in memory order");
            MomentsKernelTests.Bits(sum1[c]).Should().Be(MomentsKernelTests.Bits(sums[0][c]), $"{what}: sum(dy) of channel {c} through GradientSums");
            MomentsKernelTests.Bits(sum2[c]).Should().Be(MomentsKernelTests.Bits(sums[1][c]), $"{what}: sum(dy (x - m)) of channel {c} through GradientSums");
        }
    }

    private static void PairedChannelSums<T>(VectorWidth width, int[] shape)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Sums<T>(width, shape);
        int outer = shape[0], channels = shape[1], inner = shape[2], n = outer * channels * inner;
        T[] x = Tolerance.FromDouble<T>(KernelTestData.Data(n, 17, offset: 2, spread: 3));
        T[] dy = Tolerance.FromDouble<T>(KernelTestData.Data(n, 18, offset: 0, spread: 1));
        T[] center = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 19, offset: 2, spread: 1));
        foreach (int degree in new[] { 1, 2 })
        {
            var sum1 = new double[channels];
            var sum2 = new double[channels];
            BatchNormKernels.GradientSums<T>(x, dy, ChannelLayout.FromShape(shape, 1), center, sum1, sum2, width, degree);
            for (int c = 0; c < channels; c++)
            {
                var xc = new T[outer * inner];
                var gc = new T[outer * inner];
                for (int o = 0; o < outer; o++)
                {
                    x.AsSpan(((o * channels) + c) * inner, inner).CopyTo(xc.AsSpan(o * inner));
                    dy.AsSpan(((o * channels) + c) * inner, inner).CopyTo(gc.AsSpan(o * inner));
                }

                var alone1 = new double[1];
                var alone2 = new double[1];
                BatchNormKernels.GradientSums<T>(xc, gc, new ChannelLayout(outer, 1, inner), [center[c]], alone1, alone2, width);
                string because = $"{typeof(T).Name} {width} [{string.Join(", ", shape)}] channel {c}, {degree} threads";
                BitConverter.DoubleToInt64Bits(sum1[c]).Should().Be(BitConverter.DoubleToInt64Bits(alone1[0]), because);
                BitConverter.DoubleToInt64Bits(sum2[c]).Should().Be(BitConverter.DoubleToInt64Bits(alone2[0]), because);
            }
        }
    }

    /// <summary>
    /// The passes prefetch where the tensors of their operation together take 16 MiB or more: x and y for inference and
    /// the training forward (8 MiB each), x, dy and dx for the backward (16/3 MiB each). The element counts at which
    /// that starts are written out by hand: float 2097152 and 1398102 (16 MiB / 12 bytes = 1398101.3), double 1048576
    /// and 699051, one element fewer being below it. Without SSE (ARM) nothing prefetches.
    /// </summary>
    [Fact]
    public void Prefetch_starts_where_the_operations_tensors_take_16_MiB()
    {
        (long Elements, bool IsFloat, int Tensors, bool Expected)[] cases =
        [
            (2097152, true, Prefetch.ForwardTensors, true), (2097151, true, Prefetch.ForwardTensors, false),
            (1398102, true, Prefetch.BackwardTensors, true), (1398101, true, Prefetch.BackwardTensors, false),
            (1048576, false, Prefetch.ForwardTensors, true), (1048575, false, Prefetch.ForwardTensors, false),
            (699051, false, Prefetch.BackwardTensors, true), (699050, false, Prefetch.BackwardTensors, false),
        ];
        foreach (var (elements, isFloat, tensors, expected) in cases)
        {
            bool chosen = isFloat ? Prefetch.IsWorthIt<float>(elements, tensors) : Prefetch.IsWorthIt<double>(elements, tensors);
            chosen.Should().Be(expected && Sse.IsSupported, $"{elements} elements of {(isFloat ? "float" : "double")}, {tensors} tensors");
        }
    }

    /// <summary>
    /// The wide-row walks from memory prefetch the next block as two halves side by side, one offset per vector they
    /// compute: a vector of the first half, the same vector of the second, and on, so that the reads from memory run as
    /// two streams. For a block of an even number of vectors the offsets reach each vector once. Written out by hand:
    /// 8 vectors of 4 elements from element 100 (and a block 3 elements longer, whose halves stay whole vectors), and
    /// the scalar walk's 6 elements from 0.
    /// </summary>
    [Fact]
    public void The_next_block_is_prefetched_in_two_halves_side_by_side()
    {
        Offsets(start: 100, length: 32, width: 4, count: 8).Should().Equal(100, 116, 104, 120, 108, 124, 112, 128);
        Offsets(start: 100, length: 35, width: 4, count: 8).Should().Equal(100, 116, 104, 120, 108, 124, 112, 128);
        Offsets(start: 0, length: 6, width: 1, count: 6).Should().Equal(0, 3, 1, 4, 2, 5);

        static List<ulong> Offsets(nuint start, nuint length, nuint width, int count)
        {
            var ahead = new BatchNormKernels.BlockHalvesAhead(start, length, width);
            var offsets = new List<ulong>();
            for (int i = 0; i < count; i++)
            {
                offsets.Add(ahead.Next());
            }

            return offsets;
        }
    }

    /// <summary>
    /// The backward's vector width: 512 bits become 256 only from memory (x, dy and dx together 16 MiB or more, where the
    /// passes prefetch: x86 only) and only for channels-last rows wider than four 512-bit vectors or for channels first.
    /// Every expected width is written out from that rule, at the threshold (1398102 float or 699051 double elements) and
    /// one row below it.
    /// </summary>
    [Fact]
    public void Backward_width_is_256_bits_only_for_wide_rows_and_channels_first_from_memory()
    {
        VectorWidth fromMemory = Sse.IsSupported ? VectorWidth.Vector256 : VectorWidth.Vector512;
        (ChannelLayout Layout, bool IsFloat, VectorWidth Expected)[] cases =
        [
            (new ChannelLayout(1366, 1024, 1), true, fromMemory),                // 1398784 floats, wide rows
            (new ChannelLayout(1365, 1024, 1), true, VectorWidth.Vector512),     // one row short of the threshold: in cache
            (new ChannelLayout(21846, 64, 1), true, VectorWidth.Vector512),      // 64 float channels: four vectors
            (new ChannelLayout(17477, 80, 1), true, fromMemory),                 // 80 float channels: five vectors
            (new ChannelLayout(17476, 80, 1), true, VectorWidth.Vector512),      // one row short
            (new ChannelLayout(16384, 64, 1), false, fromMemory),                // 64 double channels: eight vectors
            (new ChannelLayout(32768, 32, 1), false, VectorWidth.Vector512),     // 32 double channels: four vectors
            (new ChannelLayout(10923, 64, 1), false, fromMemory),                // 699072 doubles
            (new ChannelLayout(10922, 64, 1), false, VectorWidth.Vector512),     // one row short
            (new ChannelLayout(2, 64, 10923), true, fromMemory),                 // channels first
            (new ChannelLayout(1, 64, 21845), true, VectorWidth.Vector512),      // just under the threshold channels first
            (new ChannelLayout(1, 3, 1 << 20), true, fromMemory),                // channels first, few channels
        ];
        KernelTestData.WidthRuleHolds(
            cases, BatchNormKernels.BackwardWidth<float>, BatchNormKernels.BackwardWidth<double>,
            new ChannelLayout(1366, 1024, 1), new ChannelLayout(2, 64, 10923));
    }

    /// <summary>
    /// The gradient sums' width: the best width for channels-last rows of a page (4 KiB) or more from memory, which go in
    /// groups of four rows; the backward's width otherwise (256 bits for other wide rows and channels first from memory
    /// on x86). Every expected width is written out, at the prefetch threshold (1398102 float or 699051 double elements).
    /// </summary>
    [Fact]
    public void Gradient_sums_width_is_the_best_for_rows_of_a_page_from_memory()
    {
        VectorWidth fromMemory = Sse.IsSupported ? VectorWidth.Vector256 : VectorWidth.Vector512;
        (ChannelLayout Layout, bool IsFloat, VectorWidth Expected)[] cases =
        [
            (new ChannelLayout(1366, 1024, 1), true, VectorWidth.Vector512),     // a page of float, from memory
            (new ChannelLayout(1365, 1024, 1), true, VectorWidth.Vector512),     // one row short: in cache
            (new ChannelLayout(2731, 512, 1), true, fromMemory),                 // half a page, from memory
            (new ChannelLayout(1366, 512, 1), false, VectorWidth.Vector512),     // a page of double
            (new ChannelLayout(683, 1024, 1), false, VectorWidth.Vector512),     // two pages of double
            (new ChannelLayout(2731, 256, 1), false, fromMemory),                // half a page of double
            (new ChannelLayout(1, 1024, 1366), true, fromMemory),                // channels first
        ];
        KernelTestData.WidthRuleHolds(
            cases, BatchNormKernels.GradientSumsWidth<float>, BatchNormKernels.GradientSumsWidth<double>,
            new ChannelLayout(1366, 1024, 1), new ChannelLayout(2, 64, 10923));
    }

    /// <summary>
    /// Wide rows in cache and from memory (x, dy and dx over the 16 MiB prefetch threshold, in blocks of 128 rows). In
    /// cache, rows wider than a tile go four rows per update of the sums ([37, 1100], [3, 2100]: odd row counts, a vector
    /// tail). From memory rows of a page or more go the same way ([342, 4100]: a tail; [1286, 1100]: a last block of 6
    /// rows; [1400, 1024]), narrower ones a row at a time ([8000, 175]: a tail of 1 to 15 channels, depending on the
    /// width and type). The from-memory shapes are checked to be over the threshold, so that a change of it cannot
    /// quietly take them off that path.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Gradient_sums_of_wide_rows_in_cache_and_from_memory_match_float64_sums(int width)
    {
        int[][] fromMemory = [[342, 4100], [1286, 1100], [1400, 1024], [8000, 175]];
        foreach (int[] shape in fromMemory)
        {
            Prefetch.IsWorthIt<float>((long)shape[0] * shape[1], Prefetch.BackwardTensors).Should().Be(Sse.IsSupported, $"[{shape[0]}, {shape[1]}] float");
        }

        foreach (int[] shape in fromMemory.Prepend([3, 2100]).Prepend([37, 1100]))
        {
            Sums<float>((VectorWidth)width, shape);
            Sums<double>((VectorWidth)width, shape);
        }
    }

    /// <summary>
    /// Channels-last rows of a page or more from memory, and rows wider than a tile of 4 KiB in cache, are summed four
    /// rows per update of the sums, and must still add each channel's terms one row after another: in T from zero over
    /// each block of rows, the blocks' sums in double in block order within each stripe of 128 rows (2^18 elements or
    /// more), then the stripes' in stripe order. A plain scalar loop in that order must give the same bits. From memory
    /// (x86 with its intrinsics on) a block is a whole stripe; otherwise, and in cache, it is max(16, 65536 / C) rows.
    /// [342, 4100] (16 KiB rows of float, two whole stripes and one of 86 rows, a tail of 4 channels past the vectors at
    /// any width), [1286, 1100] (4400 bytes of float, a last stripe of 6 rows) and [1400, 1024] (exactly a page of
    /// float) come from memory, and [8000, 175] (700 bytes of float, taken a row per update: stripes of 372 rows, the
    /// last of 188, a tail of channels at every width); [200, 1100] (blocks of 59 rows, the last of 23) and [250, 1024]
    /// (of 64, the last of 58; float rows of a page take the row-by-row walk, double ones the groups) are in cache,
    /// without stripes. Float and double.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Gradient_sums_of_wide_rows_add_the_rows_in_order(int width)
    {
        foreach (int[] shape in new[] { new[] { 342, 4100 }, new[] { 1286, 1100 }, new[] { 1400, 1024 }, new[] { 8000, 175 } })
        {
            Prefetch.IsWorthIt<float>((long)shape[0] * shape[1], Prefetch.BackwardTensors).Should().Be(Sse.IsSupported, $"[{shape[0]}, {shape[1]}] float");
            Partition.IsLarge(new ChannelLayout(shape[0], shape[1], 1)).Should().BeTrue();

            // Stripes of max(128, 65536 / C rounded down to a multiple of 4) rows: 372 for C = 175, else 128. Blocks of
            // max(16, 65536 / C) rows, at least 128 from memory: 374 for C = 175, whole stripes either way.
            int stripe = Math.Max(128, (65536 / shape[1]) & ~3);
            int block = Math.Max(16, 65536 / shape[1]);
            RowOrderSums<float>((VectorWidth)width, shape, stripe, Sse.IsSupported ? Math.Max(128, block) : block);
            RowOrderSums<double>((VectorWidth)width, shape, stripe, Sse.IsSupported ? Math.Max(128, block) : block);
        }

        foreach (var (shape, block) in new[] { (new[] { 200, 1100 }, 59), (new[] { 250, 1024 }, 64) })
        {
            Prefetch.IsWorthIt<double>((long)shape[0] * shape[1], Prefetch.BackwardTensors).Should().BeFalse();
            Partition.IsLarge(new ChannelLayout(shape[0], shape[1], 1)).Should().BeFalse();
            RowOrderSums<float>((VectorWidth)width, shape, shape[0], block);
            RowOrderSums<double>((VectorWidth)width, shape, shape[0], block);
        }
    }

    /// <summary>
    /// In cache, rows wider than four vectors and of at most a tile of 4 KiB go two rows per update of the sums, and when
    /// C is a whole number of vectors, from x's phase: aligned vectors that span the end of one row and the start of the
    /// next, with the centre and the sums rotated, the first row's first channels and the last row's last ones of each
    /// block one by one. Each channel must still take its rows in order, from zero in T over each block: the bits of a
    /// plain scalar loop. x starts at every element of a vector (so at every phase, whatever the array's own alignment),
    /// dy at two offsets. [300, 768] has blocks of 85 rows (odd, the last of 45), [250, 1024] of 64 (the last of 58),
    /// [37, 512] and [17, 256] one odd block (too many rows for the small-batch sums), [130, 96] one even block. [200, 1000]
    /// is not a whole number of 512-bit float vectors: pairs from the row starts, a tail of channels after each pair.
    /// Float and double (double rows over 4 KiB take the four-row groups).
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Gradient_sums_in_cache_add_the_rows_in_order_from_every_phase_of_x(int width)
    {
        int[][] shapes = [[300, 768], [250, 1024], [37, 512], [130, 96], [17, 256], [200, 1000]];
        foreach (int[] shape in shapes)
        {
            var layout = new ChannelLayout(shape[0], shape[1], 1);
            Prefetch.IsWorthIt<double>(layout.Length, Prefetch.BackwardTensors).Should().BeFalse();
            Partition.IsLarge(layout).Should().BeFalse();
            BatchNormKernels.IsSmallGradientBatch<float>(layout).Should().BeFalse();
            BatchNormKernels.IsSmallGradientBatch<double>(layout).Should().BeFalse();
            int block = Math.Max(16, 65536 / shape[1]);
            for (int xOffset = 0; xOffset < 16; xOffset++)
            {
                foreach (int dyOffset in new[] { 0, 5 })
                {
                    RowOrderSums<float>((VectorWidth)width, shape, shape[0], block, xOffset, dyOffset);
                    RowOrderSums<double>((VectorWidth)width, shape, shape[0], block, xOffset % 8, dyOffset);
                }
            }
        }
    }

    private static void RowOrderSums<T>(VectorWidth width, int[] shape, int stripe, int block, int xOffset = 0, int dyOffset = 0)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int rows = shape[0], channels = shape[1], n = rows * channels;
        T[] x = Tolerance.FromDouble<T>(KernelTestData.Data(n, n, offset: 2, spread: 3));
        T[] dy = Tolerance.FromDouble<T>(KernelTestData.Data(n, n + 1, offset: 0, spread: 1));
        T[] xAt = new T[n + xOffset];
        T[] dyAt = new T[n + dyOffset];
        x.CopyTo(xAt, xOffset);
        dy.CopyTo(dyAt, dyOffset);
        T[] center = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 3, offset: 2, spread: 1));
        var expected1 = new double[channels];
        var expected2 = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            for (int s0 = 0; s0 < rows; s0 += stripe)
            {
                double part1 = 0, part2 = 0;
                int s1 = Math.Min(s0 + stripe, rows);
                for (int r0 = s0; r0 < s1; r0 += block)
                {
                    T t1 = T.Zero, t2 = T.Zero;
                    for (int r = r0; r < Math.Min(r0 + block, s1); r++)
                    {
                        T d = dy[(r * channels) + c];
                        t1 += d;
                        t2 += d * (x[(r * channels) + c] - center[c]);
                    }

                    part1 += double.CreateTruncating(t1);
                    part2 += double.CreateTruncating(t2);
                }

                expected1[c] += part1;
                expected2[c] += part2;
            }
        }

        var sum1 = new double[channels];
        var sum2 = new double[channels];
        BatchNormKernels.GradientSums<T>(xAt.AsSpan(xOffset), dyAt.AsSpan(dyOffset), new ChannelLayout(rows, channels, 1), center, sum1, sum2, width);
        string what = $"{typeof(T).Name} {width} [{rows}, {channels}], x and dy {xOffset} and {dyOffset} elements into their arrays";
        sum1.Should().Equal(expected1, "sum(dy) of " + what);
        sum2.Should().Equal(expected2, "sum(dy (x - m)) of " + what);
    }

    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Input_gradient_matches_the_float64_map_with_and_without_a_mask_in_place_and_in_guarded_memory(int width)
    {
        foreach (bool guardAfter in new[] { true, false })
        {
            foreach (int size in KernelTestData.SizesAroundWidths(40))
            {
                foreach (int[] shape in new[] { new[] { 3, size }, new[] { 2, 3, size }, new[] { 2, size, 3 } })
                {
                    foreach (bool masked in new[] { false, true })
                    {
                        InputGradient<float>((VectorWidth)width, shape, masked, guardAfter);
                        InputGradient<double>((VectorWidth)width, shape, masked, guardAfter);
                    }
                }
            }
        }
    }

    /// <summary>
    /// Wide channels-last rows in cache go two at a time from the last pair to the first, an odd last row on its own
    /// first, each pair from its last vector with the overlapping tail loaded before any store; rows wider than 4 KiB
    /// go a tile of channels at a time through blocks of 32 rows (2100 channels: two whole tiles of floats and a partial
    /// one, four of doubles and a partial one; 33 and 67 rows end in a partial block of odd length). One, two, odd and
    /// even row counts, channel counts a multiple of every width and not, against the float64 map, and in place on dy.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Input_gradient_of_wide_rows_in_cache_matches_the_float64_map_in_place_and_at_every_row_count(int width)
    {
        foreach (int channels in new[] { 160, 203, 2048, 2100 })
        {
            foreach (int rows in new[] { 1, 2, 3, 6, 7, 33, 67 })
            {
                foreach (bool masked in new[] { false, true })
                {
                    InputGradient<float>((VectorWidth)width, [rows, channels], masked, guardAfter: true);
                    InputGradient<double>((VectorWidth)width, [rows, channels], masked, guardAfter: false);
                }
            }
        }
    }

    /// <summary>
    /// Wide channels-last rows from memory (every shape here is over the prefetch threshold, checked) go in blocks of
    /// about 64 KiB of each stream, a tile of 2 KiB of channels at a time down the block's rows, while the next block is
    /// prefetched. [683, 2050] float and [350, 2050] double end in a partial block (7 and 4 rows to a block) and in two
    /// channels past the last whole vector of every width, so dx is stored plainly and those channels go one by one;
    /// [48, 30000] float has rows wider than a block (one row each) and a partial last tile, and streams its stores. Rows
    /// of at most 2 KiB go in two halves at once instead, row r beside row r + ceil(rows / 2): [4099, 343] float (an odd
    /// middle row, a ragged tail, plain stores) and [2731, 256] double (streamed; the streaming test below also takes it at
    /// two alignments); their halves are not a multiple of 3 rows apart, so a pair's two rows differ in the mask. With
    /// and without a mask (every third row out), against the float64 map and in place on dy.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Input_gradient_of_wide_rows_from_memory_matches_the_float64_map_with_a_mask_a_ragged_tail_and_in_place(int width)
    {
        Prefetch.IsWorthIt<float>(683 * 2050, Prefetch.BackwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<double>(350 * 2050, Prefetch.BackwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<float>(48 * 30000, Prefetch.BackwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<float>(4099 * 343, Prefetch.BackwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<double>(2731 * 256, Prefetch.BackwardTensors).Should().Be(Sse.IsSupported);
        foreach (bool masked in new[] { false, true })
        {
            InputGradient<float>((VectorWidth)width, [683, 2050], masked, guardAfter: masked);
            InputGradient<double>((VectorWidth)width, [350, 2050], masked, guardAfter: !masked);
            InputGradient<float>((VectorWidth)width, [48, 30000], masked, guardAfter: true);
            InputGradient<float>((VectorWidth)width, [4099, 343], masked, guardAfter: masked);
            InputGradient<double>((VectorWidth)width, [2731, 256], masked, guardAfter: !masked);
        }
    }

    /// <summary>
    /// Channels last with fewer channels than a vector (<see cref="ChannelFold"/>): the sums add up the k super-channels
    /// of each channel and the remaining rows; dx is the scalar map's bits (the masked cases keep the original layout).
    /// Row counts below, at and above multiples of k, against float64 sums and the float64 map.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Few_channels_last_fold_rows_into_whole_vectors(int width)
    {
        foreach (int channels in new[] { 2, 3, 5, 7, 8, 12, 15 })
        {
            foreach (int rows in new[] { 1, 15, 16, 17, 40, 333 })
            {
                Sums<float>((VectorWidth)width, [rows, channels]);
                Sums<double>((VectorWidth)width, [rows, channels]);
                foreach (bool masked in new[] { false, true })
                {
                    InputGradient<float>((VectorWidth)width, [rows, channels], masked, guardAfter: rows % 2 == 0);
                    InputGradient<double>((VectorWidth)width, [rows, channels], masked, guardAfter: rows % 2 == 1);
                }
            }
        }
    }

    /// <summary>
    /// Outputs too large for the caches are written with aligned streaming stores: channels last, the row kernels run on
    /// rows shifted to the first aligned element, with rotated coefficients, and the unaligned ends go one element at a
    /// time; channels first, each run is aligned on its own. Forced on small inputs, dx must match the float64 map and
    /// give the scalar path's bits (which the plain stores give too) for every alignment of dx (0 to 16 elements past a
    /// 64-byte boundary), with and without a mask, and in place on dy. The [684, 2048] case is large enough for the block
    /// walk of wide rows from memory (checked).
    /// Channels-first runs from memory go in pairs, the first half's beside the second's, each with its own head: [3, 5,
    /// 46604] double (15 runs, the middle one alone) and [2, 7, 99865] float (14), with and without a mask (checked to be
    /// over the prefetch threshold). Unmasked runs shorter than <see cref="BatchNormKernels.ShortRunBytes"/> go as one
    /// stream, a vector that straddles two runs taking each lane's channel coefficients: [5, 7, 49], [4, 9, 23] and, from
    /// memory, [240, 128, 49].
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Streaming_input_gradient_gives_the_plain_bits_at_every_alignment(int width)
    {
        int[][] shapes =
        [
            [5, 16], [7, 32], [6, 48], [9, 64], [5, 80], [11, 160], [1, 64], [7, 17], [4, 100], // channels last
            [2, 3, 16], [2, 3, 37], [3, 2, 100], [1, 3, 7], [5, 7, 49], [4, 9, 23],               // channels first
        ];
        foreach (int[] shape in shapes)
        {
            for (int offset = 0; offset <= 16; offset++)
            {
                foreach (bool masked in new[] { false, true })
                {
                    InputGradientAtAlignment<float>((VectorWidth)width, shape, masked, offset, stream: true);
                    InputGradientAtAlignment<double>((VectorWidth)width, shape, masked, offset, stream: true);
                }
            }
        }

        Prefetch.IsWorthIt<float>(684 * 2048, Prefetch.BackwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<double>(3 * 5 * 46604, Prefetch.BackwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<float>(2 * 7 * 99865, Prefetch.BackwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<float>(240 * 128 * 49, Prefetch.BackwardTensors).Should().Be(Sse.IsSupported);
        foreach (int offset in new[] { 0, 3 })
        {
            InputGradientAtAlignment<float>((VectorWidth)width, [240, 128, 49], masked: false, offset, stream: true);
            InputGradientAtAlignment<float>((VectorWidth)width, [684, 2048], masked: false, offset, stream: true);
            InputGradientAtAlignment<double>((VectorWidth)width, [2731, 256], masked: false, offset, stream: true);
            foreach (bool masked in new[] { false, true })
            {
                InputGradientAtAlignment<double>((VectorWidth)width, [3, 5, 46604], masked, offset, stream: true);
                InputGradientAtAlignment<float>((VectorWidth)width, [2, 7, 99865], masked, offset, stream: true);
            }
        }
    }

    /// <summary>
    /// Wide channels-last rows in cache, for every alignment of dx (0 to 16 elements past a 64-byte boundary): the rows
    /// go from the last to the first, each from its first vector, so where dx starts decides which stores split across
    /// lines, and must not decide the bits. With and without a mask, out of place and in place on dy: dx within the
    /// float64 map's bound, the scalar path's bits, and nothing written outside dx. [9, 2048] float and [37, 1024] double
    /// have rows wider than a tile; [8, 80] float is five vectors of 16, [12, 96] double twelve of 8.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Input_gradient_in_cache_gives_the_scalar_bits_at_every_alignment_of_dx(int width)
    {
        int[][] shapes = [[8, 80], [12, 96], [9, 160], [33, 256], [10, 1024], [9, 2048]];
        foreach (int[] shape in shapes)
        {
            for (int offset = 0; offset <= 16; offset++)
            {
                foreach (bool masked in new[] { false, true })
                {
                    InputGradientAtAlignment<float>((VectorWidth)width, shape, masked, offset, stream: false);
                    InputGradientAtAlignment<double>((VectorWidth)width, shape, masked, offset, stream: false);
                }
            }
        }

        InputGradientAtAlignment<double>((VectorWidth)width, [37, 1024], masked: false, offset: 3, stream: false);
    }

    /// <summary>
    /// The same rows with dx's page offset just above x's and dy's, and just below: each row is walked from its end in
    /// the first case and from its first vector in the second (<see cref="CacheLine.WalkDown"/>, checked), whole and in
    /// tiles ([9, 2048] float, [37, 1024] double), with rows that end in an overlapping vector ([7, 100], [5, 2050]);
    /// rows of at most four vectors ([40, 16], [17, 40], [12, 64]) go from the last row, and channels-first runs
    /// ([2, 5, 37], [3, 4, 64]) from the last run's end. For every alignment of dx, with and without a mask, out of place
    /// and in place on dy: the float64 map's bound, the scalar path's bits, and nothing written outside dx.
    /// </summary>
    /// <summary>
    /// The direction the in-cache passes take, from where their buffers sit: down when the output's page offset lies just
    /// above (1-255 bytes) its inputs', up when just below, in place, or far from both; with rows of 64 bytes the
    /// neighbouring rows' offsets count too.
    /// </summary>
    [Fact]
    public void The_walk_goes_down_only_when_the_output_lies_just_above_its_inputs_in_the_page()
    {
        float[] buffer;
        int at = KernelTestData.AtPageOffset(1024, 16, 0f, out float[] input);
        ref float x = ref input[at];
        foreach (var (offset, expected) in new[] { (1024 + 84, true), (1024 - 84, false), (1024, false), (1024 + 2048, false), (1024 + 4000, false) })
        {
            int o = KernelTestData.AtPageOffset(offset, 16, 0f, out buffer);
            CacheLine.WalkDown(in buffer[o], in x, in x, 0).Should().Be(expected, $"output at page offset {offset}, input at 1024, one stream");
            CacheLine.WalkDown(in buffer[o], in x, in x, 4096).Should().Be(expected, $"output at page offset {offset}, rows a page long");
        }

        // dx 84 bytes above x but 84 below dy: a tie, which goes up; 84 above both goes down.
        int dyAt = KernelTestData.AtPageOffset(1024 + 168, 16, 0f, out float[] gradient);
        int dxAt = KernelTestData.AtPageOffset(1024 + 84, 16, 0f, out buffer);
        CacheLine.WalkDown(in buffer[dxAt], in x, in gradient[dyAt], 0).Should().BeFalse("a tie goes up");
        CacheLine.WalkDown(in buffer[dxAt], in x, in x, 0).Should().BeTrue();

        // An output 300 bytes above the input is far from it, but 236 above the next input row when rows are 64 bytes.
        int farAt = KernelTestData.AtPageOffset(1024 + 300, 16, 0f, out buffer);
        CacheLine.WalkDown(in buffer[farAt], in x, in x, 0).Should().BeFalse("one stream, 300 bytes apart");
        CacheLine.WalkDown(in buffer[farAt], in x, in x, 64).Should().BeTrue("rows of 64 bytes");
        CacheLine.WalkDown(in x, in buffer[farAt], in buffer[farAt], 64).Should().BeFalse("the mirror: just below");
    }

    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Input_gradient_in_cache_gives_the_scalar_bits_walked_from_either_end(int width)
    {
        int[][] shapes =
        [
            [12, 96], [33, 256], [10, 1024], [9, 2048], [7, 100], [5, 2050], // wide rows
            [40, 16], [17, 40], [12, 64],                                     // narrow rows
            [2, 5, 37], [3, 4, 64],                                           // channels first
        ];
        foreach (int[] shape in shapes)
        {
            for (int offset = 0; offset <= 16; offset += 3)
            {
                foreach (bool masked in new[] { false, true })
                {
                    foreach (int distance in new[] { 84, -84 })
                    {
                        InputGradientAtAlignment<float>((VectorWidth)width, shape, masked, offset, stream: false, distance);
                        InputGradientAtAlignment<double>((VectorWidth)width, shape, masked, offset, stream: false, distance);
                    }
                }
            }
        }

        InputGradientAtAlignment<double>((VectorWidth)width, [37, 1024], masked: true, offset: 3, stream: false, distance: 84);
        CacheLine.WalkDown([84, 84]).Should().BeTrue();
        CacheLine.WalkDown([84, 0]).Should().BeTrue("in place on dy");
        CacheLine.WalkDown([-84, -84]).Should().BeFalse();
    }

    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Masked_moments_match_the_float64_reference(int width)
    {
        foreach (int size in KernelTestData.SizesAroundWidths(40).Append(5000))
        {
            foreach (int[] shape in new[] { new[] { 37, size % 24 + 1 }, new[] { 2, 3, size }, new[] { 3, size % 9 + 1, 11 } })
            {
                MaskedMoments<float>((VectorWidth)width, shape, size);
                MaskedMoments<double>((VectorWidth)width, shape, size);
            }
        }

        // Hard data: mean 1e4, std 1, every other position masked.
        MaskedMoments<float>((VectorWidth)width, [600, 5], 1, offset: 1e4);
        MaskedMoments<float>((VectorWidth)width, [4, 5, 300], 2, offset: 1e4);
    }

    /// <summary>
    /// The gradient sums of small channels-last batches of at least 8 channels (and for float at most 32) are summed in
    /// double precision. Written out at the edges: 7 and 8 channels, 32 and 33 float channels, a batch one row or one
    /// channel past the small-batch limits, and channels first.
    /// </summary>
    [Fact]
    public void Small_gradient_batches_are_8_channels_or_more_and_at_most_32_of_float()
    {
        (ChannelLayout Layout, bool Float, bool Double)[] cases =
        [
            (new ChannelLayout(8, 16, 1), true, true),
            (new ChannelLayout(8, 7, 1), false, false),
            (new ChannelLayout(8, 8, 1), true, true),
            (new ChannelLayout(8, 32, 1), true, true),
            (new ChannelLayout(8, 33, 1), false, true),
            (new ChannelLayout(9, 16, 1), false, true),     // nine rows: not a small float batch
            (new ChannelLayout(17, 16, 1), false, false),
            (new ChannelLayout(2, 1024, 1), false, true),   // 16 KiB of double
            (new ChannelLayout(2, 1025, 1), false, false),
            (new ChannelLayout(2, 16, 8), false, false),    // channels first
        ];
        foreach (var (layout, isFloat, isDouble) in cases)
        {
            BatchNormKernels.IsSmallGradientBatch<float>(layout).Should().Be(isFloat, $"float {layout}");
            BatchNormKernels.IsSmallGradientBatch<double>(layout).Should().Be(isDouble, $"double {layout}");
        }
    }

    /// <summary>
    /// Those sums: the scalar path's bits at every width, and within double precision's bound of the float64 sums (for
    /// float input too: each term dy (x - centre) of float values is exact in double). Every row count of a small batch,
    /// channel counts around every width up to the limits.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Small_gradient_sums_are_double_sums_with_the_scalar_bits(int width)
    {
        foreach (int channels in KernelTestData.SizesAroundWidths(40).Concat([64, 100, 128, 1024]))
        {
            for (int rows = 1; rows <= 16; rows++)
            {
                SmallSums<float>((VectorWidth)width, rows, channels);
                SmallSums<double>((VectorWidth)width, rows, channels);
            }
        }
    }

    private static void SmallSums<T>(VectorWidth width, int rows, int channels)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var layout = new ChannelLayout(rows, channels, 1);
        if (!BatchNormKernels.IsSmallGradientBatch<T>(layout))
        {
            return;
        }

        int n = rows * channels;
        T[] x = Tolerance.FromDouble<T>(KernelTestData.Data(n, n + rows, offset: 300, spread: 3));
        T[] dy = Tolerance.FromDouble<T>(KernelTestData.Data(n, n + rows + 1, offset: 0.1, spread: 1));
        T[] center = Tolerance.FromDouble<T>(KernelTestData.Data(channels, rows, offset: 300, spread: 1));
        double[] xd = Tolerance.ToDouble<T>(x);
        double[] gd = Tolerance.ToDouble<T>(dy);
        double[] md = Tolerance.ToDouble<T>(center);
        var (expected1, expected2, scale1, scale2) = ReferenceSums(xd, gd, md, [rows, channels]);

        var scalar1 = new double[channels];
        var scalar2 = new double[channels];
        BatchNormKernels.GradientSums<T>(x, dy, layout, center, scalar1, scalar2, VectorWidth.Scalar);
        var sum1 = new double[channels];
        var sum2 = new double[channels];
        BatchNormKernels.GradientSums<T>(x, dy, layout, center, sum1, sum2, width);

        string what = $"small {typeof(T).Name} {width} [{rows}, {channels}]";
        sum1.Should().Equal(scalar1, what);
        sum2.Should().Equal(scalar2, what);
        double k = 2 * rows * Tolerance.Epsilon<double>();
        Tolerance.ShouldBeClose(sum1, expected1, scale1, k, 0, "sum(dy) of " + what);
        Tolerance.ShouldBeClose(sum2, expected2, scale2, k, 0, "sum(dy (x - m)) of " + what);
    }

    /// <summary>
    /// The float64 gradient sums per channel (axis 1 of <paramref name="shape"/>), summed in element order, and the sums of
    /// their terms' magnitudes, which scale the summation error bound.
    /// </summary>
    private static (double[] SumDy, double[] SumDyCentered, double[] ScaleDy, double[] ScaleDyCentered) ReferenceSums(
        double[] xd, double[] gd, double[] md, int[] shape)
    {
        int channels = shape[1];
        var sumDy = new double[channels];
        var sumDyCentered = new double[channels];
        var scaleDy = new double[channels];
        var scaleDyCentered = new double[channels];
        for (int i = 0; i < xd.Length; i++)
        {
            int c = ReferenceBatchNorm.ChannelOf(i, shape, 1);
            double term = gd[i] * (xd[i] - md[c]);
            sumDy[c] += gd[i];
            sumDyCentered[c] += term;
            scaleDy[c] += Math.Abs(gd[i]);
            scaleDyCentered[c] += Math.Abs(term);
        }

        return (sumDy, sumDyCentered, scaleDy, scaleDyCentered);
    }

    private static void Sums<T>(VectorWidth width, int[] shape)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = MomentsKernelTests.Product(shape);
        int channels = shape[1];
        T[] x = Tolerance.FromDouble<T>(KernelTestData.Data(n, n, offset: 2, spread: 3));
        T[] dy = Tolerance.FromDouble<T>(KernelTestData.Data(n, n + 1, offset: 0, spread: 1));
        T[] center = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 3, offset: 2, spread: 1));
        double[] xd = Tolerance.ToDouble<T>(x);
        double[] gd = Tolerance.ToDouble<T>(dy);
        double[] md = Tolerance.ToDouble<T>(center);
        var (expected1, expected2, scale1, scale2) = ReferenceSums(xd, gd, md, shape);

        var sum1 = new double[channels];
        var sum2 = new double[channels];
        BatchNormKernels.GradientSums<T>(x, dy, ChannelLayout.FromShape(shape, 1), center, sum1, sum2, width);

        // Summation error is bounded by (terms per accumulator) * eps * sum(|terms|); blocks keep that count small.
        double k = (8 + Math.Sqrt(n / channels)) * Tolerance.Epsilon<T>() * 4;
        string what = $"{typeof(T).Name} {width} [{string.Join(", ", shape)}]";
        Tolerance.ShouldBeClose(sum1, expected1, scale1, k, 0, "sum(dy) of " + what);
        Tolerance.ShouldBeClose(sum2, expected2, scale2, k, 0, "sum(dy (x - m)) of " + what);
    }

    private static void InputGradient<T>(VectorWidth width, int[] shape, bool masked, bool guardAfter)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = MomentsKernelTests.Product(shape);
        var (layout, x, dy, center, a, p, q, weights) = InputGradientData<T>(shape, masked, xSeed: n);
        var (expected, bound) = InputGradientReference(shape, layout, x, dy, center, a, p, q, weights);

        using var xs = new GuardedBuffer<T>(n, guardAfter);
        using var gs = new GuardedBuffer<T>(n, guardAfter);
        using var ds = new GuardedBuffer<T>(n, guardAfter);
        x.CopyTo(xs.Span);
        dy.CopyTo(gs.Span);
        BatchNormKernels.InputGradient<T>(xs.Span, gs.Span, ds.Span, layout, weights, center, a, p, q, width);
        string what = $"{typeof(T).Name} {width} [{string.Join(", ", shape)}] masked {masked}";
        Tolerance.ShouldBeWithin(Tolerance.ToDouble<T>(ds.Span), expected, bound, "dx of " + what);

        T[] outOfPlace = ds.Span.ToArray();
        BatchNormKernels.InputGradient<T>(xs.Span, gs.Span, gs.Span, layout, weights, center, a, p, q, width);
        gs.Span.ToArray().Should().Equal(outOfPlace, "in place on dy: " + what);
    }

    /// <summary>
    /// dx with its output (and, for the in-place call, dy) <paramref name="offset"/> elements past a 64-byte boundary,
    /// between sentinels, with streaming stores or plain ones: within the float64 map's bound, the scalar path's bits,
    /// out of place and in place on dy, and nothing written outside dx.
    /// </summary>
    /// <summary>
    /// dx of the given shape into a pinned buffer <paramref name="offset"/> elements past a line, against the float64 map
    /// and the scalar path's bits, out of place and in place on dy. With <paramref name="distance"/>, x and dy sit at one
    /// page offset, dx that many bytes above it (<c>CacheLine.WalkDown</c>).
    /// </summary>
    private static void InputGradientAtAlignment<T>(VectorWidth width, int[] shape, bool masked, int offset, bool stream, int? distance = null)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = MomentsKernelTests.Product(shape);
        var (layout, x, dy, center, a, p, q, weights) = InputGradientData<T>(shape, masked, xSeed: n + offset);
        var (expected, bound) = InputGradientReference(shape, layout, x, dy, center, a, p, q, weights);
        string what = $"{typeof(T).Name} {width} [{string.Join(", ", shape)}] masked {masked} offset {offset} stream {stream} distance {distance}";
        var scalar = new T[n];
        BatchNormKernels.InputGradient<T>(x, dy, scalar, layout, weights, center, a, p, q, VectorWidth.Scalar, stream: false);

        T sentinel = T.CreateTruncating(-7.25);
        T[] buffer;
        int start;
        ReadOnlySpan<T> input = x, gradient = dy;
        if (distance is int bytes)
        {
            int outputOffset = 2048 + (offset * Unsafe.SizeOf<T>());
            start = KernelTestData.AtPageOffset(outputOffset, n, sentinel, out buffer);
            int xStart = KernelTestData.AtPageOffset(outputOffset - bytes, n, T.Zero, out T[] xBuffer);
            int dyStart = KernelTestData.AtPageOffset(outputOffset - bytes, n, T.Zero, out T[] dyBuffer);
            x.CopyTo(xBuffer.AsSpan(xStart));
            dy.CopyTo(dyBuffer.AsSpan(dyStart));
            input = xBuffer.AsSpan(xStart, n);
            gradient = dyBuffer.AsSpan(dyStart, n);
        }
        else
        {
            buffer = GC.AllocateArray<T>(n + 64, pinned: true);
            start = KernelTestData.ElementsToLine(buffer) + 16 + offset;
            buffer.AsSpan().Fill(sentinel);
        }

        Span<T> output = buffer.AsSpan(start, n);
        BatchNormKernels.InputGradient<T>(input, gradient, output, layout, weights, center, a, p, q, width, stream: stream);
        Tolerance.ShouldBeWithin(Tolerance.ToDouble<T>(output.ToArray()), expected, bound, "dx of " + what);
        output.ToArray().Should().Equal(scalar, "out of place: " + what);
        buffer[start - 1].Should().Be(sentinel, what);
        buffer[start + n].Should().Be(sentinel, what);

        // In place on dy (with a distance, x lies that many bytes below dx and dy).
        dy.CopyTo(output);
        BatchNormKernels.InputGradient<T>(input, output, output, layout, weights, center, a, p, q, width, stream: stream);
        output.ToArray().Should().Equal(scalar, "in place on dy: " + what);
        buffer[start - 1].Should().Be(sentinel, what);
        buffer[start + n].Should().Be(sentinel, what);
    }

    /// <summary>Inputs, per-channel coefficients and (masked: every third position out) weights for the dx tests.</summary>
    private static (ChannelLayout Layout, T[] X, T[] Dy, T[] Center, T[] A, T[] P, T[] Q, T[] Weights) InputGradientData<T>(int[] shape, bool masked, int xSeed)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = MomentsKernelTests.Product(shape);
        int channels = shape[1];
        var layout = ChannelLayout.FromShape(shape, 1);
        T[] weights = masked ? Enumerable.Range(0, layout.Outer * layout.Inner).Select(i => i % 3 == 1 ? T.Zero : T.One).ToArray() : [];
        return (
            layout,
            Tolerance.FromDouble<T>(KernelTestData.Data(n, xSeed, offset: 2, spread: 3)),
            Tolerance.FromDouble<T>(KernelTestData.Data(n, n + 1, offset: 0, spread: 1)),
            Tolerance.FromDouble<T>(KernelTestData.Data(channels, 3, offset: 2, spread: 1)),
            Tolerance.FromDouble<T>(KernelTestData.Data(channels, 4, offset: 0, spread: 2)),
            Tolerance.FromDouble<T>(KernelTestData.Data(channels, 5, offset: 0, spread: 2)),
            Tolerance.FromDouble<T>(KernelTestData.Data(channels, 6, offset: 0, spread: 2)),
            weights);
    }

    /// <summary>
    /// The float64 map <c>dx = dy a + w ((x - center) p + q)</c>, written plainly, and a bound of four roundings of T on
    /// the sizes of its terms.
    /// </summary>
    private static (double[] Expected, double[] Bound) InputGradientReference<T>(
        int[] shape, ChannelLayout layout, T[] x, T[] dy, T[] center, T[] a, T[] p, T[] q, T[] weights)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = x.Length;
        int channels = shape[1];
        var expected = new double[n];
        var bound = new double[n];
        for (int i = 0; i < n; i++)
        {
            int c = ReferenceBatchNorm.ChannelOf(i, shape, 1);
            int maskIndex = ((i / (channels * layout.Inner)) * layout.Inner) + (i % layout.Inner);
            double w = weights.Length == 0 ? 1.0 : double.CreateTruncating(weights[maskIndex]);
            double centered = double.CreateTruncating(x[i]) - double.CreateTruncating(center[c]);
            double direct = double.CreateTruncating(dy[i]) * double.CreateTruncating(a[c]);
            double statistics = (centered * double.CreateTruncating(p[c])) + double.CreateTruncating(q[c]);
            expected[i] = direct + (w * statistics);
            bound[i] = 4 * Tolerance.Epsilon<T>() * (Math.Abs(direct) + Math.Abs(centered * double.CreateTruncating(p[c])) + Math.Abs(double.CreateTruncating(q[c])) + Math.Abs(expected[i]));
        }

        return (expected, bound);
    }

    private static void MaskedMoments<T>(VectorWidth width, int[] shape, int seed, double offset = 1)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = MomentsKernelTests.Product(shape);
        var layout = ChannelLayout.FromShape(shape, 1);
        var random = new Random(seed);
        bool[] mask = Enumerable.Range(0, layout.Outer * layout.Inner).Select(_ => random.NextDouble() < 0.6).ToArray();
        T[] x = Tolerance.FromDouble<T>(KernelTestData.Data(n, seed, offset, spread: 1));
        double[] xd = Tolerance.ToDouble<T>(x);

        // The reference: exact mean and M2 of the unmasked values (no Keras +1e-7 here; the kernel returns exact moments).
        var reference = new ReferenceForward(shape, 1, 1e-3) { Mask = mask };
        int channels = shape[1];
        var selected = Enumerable.Range(0, channels).Select(_ => new System.Collections.Generic.List<double>()).ToArray();
        for (int i = 0; i < n; i++)
        {
            if (mask[reference.MaskIndexOf(i)])
            {
                selected[ReferenceBatchNorm.ChannelOf(i, shape, 1)].Add(xd[i]);
            }
        }

        var mean = new double[channels];
        var m2 = new double[channels];
        double count = BatchNormKernels.MaskedMoments<T>(x, layout, mask.Select(b => b ? T.One : T.Zero).ToArray(), mean, m2, width);

        count.Should().Be(mask.Count(b => b));
        for (int c = 0; c < channels; c++)
        {
            double[] values = selected[c].ToArray();
            double[] expectedMean = [values.Length == 0 ? 0 : values.Average()];
            double[] expectedVariance = [values.Length == 0 ? 0 : values.Select(v => (v - expectedMean[0]) * (v - expectedMean[0])).Sum() / values.Length];
            double[] variance = [values.Length == 0 ? m2[c] : m2[c] / values.Length];
            MomentsKernelTests.AssertMoments<T>([mean[c]], variance, expectedMean, expectedVariance, Math.Max(1, values.Length),
                $"masked {typeof(T).Name} {width} [{string.Join(", ", shape)}] channel {c}");
        }
    }
}
