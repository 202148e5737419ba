using System;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using BatchNorm.Kernels;
using BatchNorm.Tests.Reference;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Kernels;

[Trait("Category", "Kernels")]
public class AffineKernelTests
{
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Affine_matches_the_float64_map_for_every_size_and_layout(int width)
    {
        foreach (int size in KernelTestData.SizesAroundWidths(70))
        {
            foreach (int[] shape in new[] { new[] { 3, size }, new[] { 1, size }, new[] { 2, 3, size }, new[] { 2, size, 3 }, new[] { 2, size, 17 } })
            {
                Check<float>((VectorWidth)width, shape, 1);
                Check<double>((VectorWidth)width, shape, 1);
            }
        }
    }

    /// <summary>
    /// Channels last with fewer channels than a vector: rows are folded k at a time into super-rows of whole vectors,
    /// with the remaining rows mod k on the original layout (<see cref="ChannelFold"/>). Row counts below, at and above
    /// multiples of k (16 for 3 float channels at 512 bits), against the float64 map and the scalar path's bits, in place
    /// and in guarded memory.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Few_channels_last_fold_rows_into_whole_vectors_with_the_scalar_bits(int width)
    {
        foreach (int channels in new[] { 2, 3, 5, 6, 7, 8, 12, 15 })
        {
            foreach (int rows in new[] { 1, 5, 15, 16, 17, 40, 333 })
            {
                Check<float>((VectorWidth)width, [rows, channels], 1);
                Check<double>((VectorWidth)width, [rows, channels], 1);
                Guarded<float>((VectorWidth)width, [rows, channels], guardAfter: rows % 2 == 0);
                Guarded<double>((VectorWidth)width, [rows, channels], guardAfter: rows % 2 == 1);
            }
        }
    }

    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Affine_in_place_and_in_guarded_memory_gives_the_same_bits_as_scalar(int width)
    {
        foreach (bool guardAfter in new[] { true, false })
        {
            foreach (int size in KernelTestData.SizesAroundWidths(40))
            {
                foreach (int[] shape in new[] { new[] { 3, size }, new[] { 2, 3, size } })
                {
                    Guarded<float>((VectorWidth)width, shape, guardAfter);
                    Guarded<double>((VectorWidth)width, shape, guardAfter);
                }
            }
        }
    }

    /// <summary>
    /// Wide channels-last rows in cache that do not share a phase (C not a multiple of the width, or fewer than eight
    /// rows) go 4 KiB tiles of channels at a time through blocks of 32 rows once they are wider than 6 KiB, with each
    /// row's overlapping last vector computed before the block's first store. Channel counts that are a multiple of no
    /// width (1571, 3001) or of the narrower ones only (2050), partial tiles, partial blocks of odd length (37 and 67
    /// rows), two and three rows: the float64 map, and the scalar path's bits in place and in guarded memory.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Wide_rows_without_a_shared_phase_go_a_tile_at_a_time_with_the_scalar_bits(int width)
    {
        foreach (int[] shape in new[] { new[] { 37, 1571 }, new[] { 2, 3001 }, new[] { 3, 3001 }, new[] { 67, 2050 } })
        {
            Check<float>((VectorWidth)width, shape, 1);
            Check<double>((VectorWidth)width, shape, 1);
            Guarded<float>((VectorWidth)width, shape, guardAfter: shape[0] % 2 == 0);
            Guarded<double>((VectorWidth)width, shape, guardAfter: shape[0] % 2 == 1);
        }
    }

    /// <summary>
    /// Outputs too large for the caches are written with streaming stores, which need aligned addresses: the pass then
    /// starts at the first aligned element and maps the unaligned ends one element at a time. Forced on small inputs,
    /// it must give the scalar path's bits for every start alignment of the output (0 to 16 elements past a 64-byte
    /// boundary), row width, run length, and in place (where input and output share that alignment). Inputs over the
    /// prefetch threshold (x and y together 16 MiB, checked) are also prefetched, and then channels-last rows of a whole
    /// number of vectors go as eight streams of shifted rows side by side, the rows left over one at a time, the last
    /// row's rest after them: [520, 2048] double, [688, 1536] double and [512, 4112] float (520, 688 or 512 whole rows
    /// at a zero head, none left over; one fewer otherwise, seven left over), [16411, 64] double (three or two left over).
    /// Other prefetched rows, and the last row's rest, are walked as two halves at once, the second starting mid-row:
    /// [16411, 129] float (an odd row, so the halves' channels differ).
    /// Prefetched channels-first runs go in pairs, the first half's beside the second's, each with its own head: [3, 5,
    /// 70001] double (15 runs, the middle one alone) and [4, 3, 174763] float (12). Runs shorter than
    /// <see cref="BatchNormKernels.ShortRunBytes"/> go as one stream, a vector that straddles two runs taking each lane's
    /// channel coefficients ([2, 3, 16], [2, 3, 37], [5, 7, 49], [4, 9, 23], [3, 2, 100] and, prefetched, [360, 128, 49]).
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Streaming_stores_give_the_same_bits_as_scalar_at_every_alignment(int width)
    {
        int[][] shapes =
        [
            [5, 16], [7, 17], [3, 33], [9, 64], [4, 100], [2, 1000], [1, 40], // channels last
            [2, 3, 16], [2, 3, 37], [3, 2, 100], [1, 3, 7], [2, 2, 1],       // channels first, runs of all lengths
            [5, 7, 49], [4, 9, 23],                                          // short runs, as one stream
        ];
        foreach (int[] shape in shapes)
        {
            for (int offset = 0; offset <= 16; offset++)
            {
                Streamed<float>((VectorWidth)width, shape, offset);
                Streamed<double>((VectorWidth)width, shape, offset);
            }
        }

        Prefetch.IsWorthIt<double>(520 * 2048, Prefetch.ForwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<double>(688 * 1536, Prefetch.ForwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<float>(512 * 4112, Prefetch.ForwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<double>(16411 * 64, Prefetch.ForwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<float>(16411 * 129, Prefetch.ForwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<double>(3 * 5 * 70001, Prefetch.ForwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<float>(4 * 3 * 174763, Prefetch.ForwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<float>(360 * 128 * 49, Prefetch.ForwardTensors).Should().Be(Sse.IsSupported);
        foreach (int offset in new[] { 0, 3 })
        {
            Streamed<float>((VectorWidth)width, [360, 128, 49], offset);
            Streamed<double>((VectorWidth)width, [520, 2048], offset);
            Streamed<double>((VectorWidth)width, [688, 1536], offset);
            Streamed<float>((VectorWidth)width, [512, 4112], offset);
            Streamed<double>((VectorWidth)width, [16411, 64], offset);
            Streamed<float>((VectorWidth)width, [16411, 129], offset);
            Streamed<double>((VectorWidth)width, [3, 5, 70001], offset);
            Streamed<float>((VectorWidth)width, [4, 3, 174763], offset);
        }
    }

    /// <summary>
    /// Wide channels-last rows whose length is a whole number of vectors all start at the same phase: the pass walks the
    /// rows as one flat run of aligned vectors from it (when the phase is not zero, one vector a row spans two rows),
    /// reading their coefficients from an interleaved copy, and covers the tensor's two ends with one overlapping vector
    /// each (<see cref="RowPhase"/>). Rows wider than 6 KiB go 4 KiB
    /// tiles at a time through blocks of 32 rows: [37, 2048] ends in a partial block of odd length, and [66, 1552] is
    /// tiled only when the phase is zero (97 vectors of 16 floats, 6208 bytes: a whole tile and a partial one; 96
    /// vectors, 6 KiB, walk whole). For every input phase (0 to 16 elements past a 64-byte boundary), outputs at another
    /// phase and in place, even and odd row counts: the scalar path's bits, and nothing written outside the output.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Rows_sharing_a_phase_walk_aligned_vectors_with_the_scalar_bits(int width)
    {
        foreach (int[] shape in new[] { new[] { 8, 80 }, new[] { 9, 96 }, new[] { 33, 256 }, new[] { 12, 1024 }, new[] { 37, 2048 }, new[] { 66, 1552 } })
        {
            for (int offset = 0; offset <= 16; offset++)
            {
                Phased<float>((VectorWidth)width, shape, offset);
                Phased<double>((VectorWidth)width, shape, offset);
            }
        }
    }

    /// <summary>
    /// The same rows with the output's page offset just above the input's, and just below: the pass walks from its end
    /// in the first case and from its start in the second (<see cref="CacheLine.WalkDown"/>, checked for [12, 1024] and
    /// for rows of 16 floats), tiled ([37, 2048], [66, 1552] at phase 0) and not, with the pair loop's odd row, the last
    /// flat row and the tensor's two ends; rows of at most four vectors ([40, 16], [33, 48], [17, 40] with an
    /// overlapping last vector, [12, 64]), whose coefficients stay in registers; and channels-first runs ([2, 5, 37],
    /// [3, 4, 64], [2, 3, 100]), walked from the last run's end. For every input phase: the scalar path's bits, and
    /// nothing written outside the output.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Affine_in_cache_gives_the_scalar_bits_walked_from_either_end(int width)
    {
        int[][] shapes =
        [
            [9, 96], [33, 256], [12, 1024], [37, 2048], [66, 1552], // wide rows
            [40, 16], [33, 48], [17, 40], [12, 64],                  // narrow rows
            [2, 5, 37], [3, 4, 64], [2, 3, 100],                     // channels first
        ];
        foreach (int[] shape in shapes)
        {
            for (int offset = 0; offset <= 16; offset++)
            {
                foreach (int distance in new[] { 84, -84 })
                {
                    PhasedAtDistance<float>((VectorWidth)width, shape, offset, distance);
                    PhasedAtDistance<double>((VectorWidth)width, shape, offset, distance);
                }
            }
        }

        CacheLine.WalkDown([84, 84 - 4096, 84 + 4096]).Should().BeTrue();
        CacheLine.WalkDown([-84, -84 - 4096, -84 + 4096]).Should().BeFalse();
        CacheLine.WalkDown([84, 84 - 64, 84 + 64]).Should().BeTrue();
        CacheLine.WalkDown([-84, -84 - 64, -84 + 64]).Should().BeFalse();
        CacheLine.WalkDown([84]).Should().BeTrue();
        CacheLine.WalkDown([-84]).Should().BeFalse();
    }

    /// <summary>The phased tests' input, coefficients and the scalar path's output for <paramref name="shape"/>.</summary>
    private static (int N, ChannelLayout Layout, T[] X, T[] Center, T[] Scale, T[] Shift, T[] Scalar) PhasedData<T>(int[] shape, int offset)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = MomentsKernelTests.Product(shape);
        int channels = shape[1];
        var layout = ChannelLayout.FromShape(shape, 1);
        T[] x = Tolerance.FromDouble<T>(KernelTestData.Data(n, n + offset, offset: 0.5, spread: 4));
        T[] center = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 7, offset: 0.5, spread: 1));
        T[] scale = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 8, offset: 0, spread: 3));
        T[] shift = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 9, offset: 0, spread: 5));
        var scalar = new T[n];
        BatchNormKernels.Affine<T>(x, scalar, layout, center, scale, shift, VectorWidth.Scalar);
        return (n, layout, x, center, scale, shift, scalar);
    }

    private static void PhasedAtDistance<T>(VectorWidth width, int[] shape, int offset, int distance)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var (n, layout, x, center, scale, shift, scalar) = PhasedData<T>(shape, offset);

        // The input `offset` elements past a line, 1 KiB into its page; the output `distance` bytes from it in the page.
        T sentinel = T.CreateTruncating(-7.25);
        int inputOffset = 1024 + (offset * Unsafe.SizeOf<T>());
        int inputStart = KernelTestData.AtPageOffset(inputOffset, n, sentinel, out T[] inputBuffer);
        int outputStart = KernelTestData.AtPageOffset(inputOffset + distance, n, sentinel, out T[] outputBuffer);
        Span<T> input = inputBuffer.AsSpan(inputStart, n);
        Span<T> output = outputBuffer.AsSpan(outputStart, n);
        x.CopyTo(input);

        string because = $"{typeof(T).Name} {width} [{string.Join(", ", shape)}] offset {offset} distance {distance}";
        BatchNormKernels.Affine<T>(input, output, layout, center, scale, shift, width);
        output.ToArray().Should().Equal(scalar, because);
        input.ToArray().Should().Equal(x, "the input is untouched, " + because);
        outputBuffer[outputStart - 1].Should().Be(sentinel, because);
        outputBuffer[outputStart + n].Should().Be(sentinel, because);
    }

    private static unsafe void Phased<T>(VectorWidth width, int[] shape, int offset)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var (n, layout, x, center, scale, shift, scalar) = PhasedData<T>(shape, offset);

        // Input `offset` elements past a 64-byte boundary, output 5 further on; sentinels around both.
        T[] buffer = GC.AllocateArray<T>((2 * n) + 128, pinned: true);
        int aligned = KernelTestData.ElementsToLine(buffer);
        int inputStart = aligned + 16 + offset;
        int outputStart = inputStart + n + 16 + 5;
        T sentinel = T.CreateTruncating(-7.25);
        buffer.AsSpan().Fill(sentinel);
        Span<T> input = buffer.AsSpan(inputStart, n);
        Span<T> output = buffer.AsSpan(outputStart, n);
        x.CopyTo(input);

        string because = $"{typeof(T).Name} {width} [{string.Join(", ", shape)}] offset {offset}";
        BatchNormKernels.Affine<T>(input, output, layout, center, scale, shift, width);
        output.ToArray().Should().Equal(scalar, "out of place, " + because);
        input.ToArray().Should().Equal(x, "the input is untouched, " + because);
        buffer[outputStart - 1].Should().Be(sentinel, because);
        buffer[outputStart + n].Should().Be(sentinel, because);

        BatchNormKernels.Affine<T>(input, input, layout, center, scale, shift, width);
        input.ToArray().Should().Equal(scalar, "in place, " + because);
        buffer[inputStart - 1].Should().Be(sentinel, because);
        buffer[inputStart + n].Should().Be(sentinel, because);
    }

    /// <summary>
    /// From memory, channels-last rows of a whole number of vectors go as eight streams of shifted rows side by side only
    /// when no output stream's page offset lies more than a vector but less than <see cref="CacheLine.AliasBytes"/> above
    /// an input stream's; otherwise they take the older walks. y 56 bytes above x (as consecutive large arrays lie) is
    /// clear for 512-bit vectors only; 120 above never is; 56 below always is. Each placement, with x and y in one pinned
    /// buffer, must give the scalar path's bits, with y at a line and three elements past one: [520, 2048] double and
    /// [512, 4112] float (rows left over after the eight streams, or none), and [16411, 64] double, whose streams lie at
    /// many distances from one another, so that 2 KiB apart may not clear them all.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Streaming_rows_take_eight_streams_only_clear_of_the_input_and_give_the_same_bits(int width)
    {
        foreach (int offset in new[] { 0, 3 })
        {
            foreach (int apart in new[] { 2048, 56, 120, 4040 })
            {
                PlacedStreams<double>((VectorWidth)width, 520, 2048, offset, apart);
                PlacedStreams<double>((VectorWidth)width, 16411, 64, offset, apart);
                PlacedStreams<float>((VectorWidth)width, 512, 4112, offset, apart);
            }
        }
    }

    private static unsafe void PlacedStreams<T>(VectorWidth width, int rows, int channels, int offset, int apart)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = rows * channels;
        var layout = new ChannelLayout(rows, channels, 1);
        T[] data = Tolerance.FromDouble<T>(KernelTestData.Data(n, n + offset, offset: 0.5, spread: 4));
        T[] center = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 6, offset: 0.5, spread: 1));
        T[] scale = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 3, offset: 0, spread: 3));
        T[] shift = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 4, offset: 0, spread: 5));
        var scalar = new T[n];
        BatchNormKernels.Affine<T>(data, scalar, layout, center, scale, shift, VectorWidth.Scalar, stream: false);

        // One pinned buffer: x from a page boundary, y from a later page boundary plus `apart` bytes (so its page offset lies
        // that far above x's) plus `offset` elements; a sentinel after y.
        int page = CacheLine.PageBytes / sizeof(T);
        T[] buffer = GC.AllocateArray<T>((2 * n) + (4 * page), pinned: true);
        int first;
        fixed (T* p = buffer)
        {
            first = (int)((CacheLine.PageBytes - ((nint)p & (CacheLine.PageBytes - 1))) & (CacheLine.PageBytes - 1)) / sizeof(T);
        }

        int yStart = first + ((n + page - 1) / page * page) + page + (apart / sizeof(T)) + offset;
        T sentinel = T.CreateTruncating(-7.25);
        buffer.AsSpan().Fill(sentinel);
        Span<T> x = buffer.AsSpan(first, n);
        Span<T> y = buffer.AsSpan(yStart, n);
        data.CopyTo(x);

        string because = $"{typeof(T).Name} {width} [{rows}, {channels}] offset {offset}, y {apart} bytes above x";
        int head;
        fixed (T* py = y)
        {
            head = NonTemporal.ElementsToAlignment<T>(py, VectorWidths.Lanes<T>(width) * sizeof(T));
        }

        int vectorBytes = VectorWidths.Lanes<T>(width) * sizeof(T);
        bool clear = BatchNormKernels.RowStreamsAreClear(in y[head], in x[head], head == 0 ? rows : rows - 1, channels, vectorBytes);
        if (channels * sizeof(T) % CacheLine.PageBytes == 0)
        {
            // In place, with rows of whole pages, every pair of streams lies a whole number of pages apart: clear.
            BatchNormKernels.RowStreamsAreClear(in x[head], in x[head], head == 0 ? rows : rows - 1, channels, vectorBytes).Should().BeTrue(because);
        }

        if (channels * sizeof(T) % CacheLine.PageBytes == 0)
        {
            // Rows of whole pages: every output stream's page offset lies apart + offset elements above every input
            // stream's. Below, or 2 KiB away, is clear; 56 bytes above only within a vector (512-bit, offset 0); 56 bytes
            // and 3 elements, or 120 bytes, above never are.
            bool expected = apart is 2048 or 4040 || (apart == 56 && offset == 0 && vectorBytes == 64);
            clear.Should().Be(expected, because);
        }

        BatchNormKernels.Affine<T>(x, y, layout, center, scale, shift, width, stream: true);
        y.ToArray().Should().Equal(scalar, because);
        buffer[yStart + n].Should().Be(sentinel, because);
        buffer[yStart - 1].Should().Be(sentinel, because);
    }

    private static unsafe void Streamed<T>(VectorWidth width, int[] shape, int offset)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = MomentsKernelTests.Product(shape);
        int channels = shape[1];
        var layout = ChannelLayout.FromShape(shape, 1);
        T[] x = Tolerance.FromDouble<T>(KernelTestData.Data(n, n + offset, offset: 0.5, spread: 4));
        T[] center = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 6, offset: 0.5, spread: 1));
        T[] scale = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 3, offset: 0, spread: 3));
        T[] shift = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 4, offset: 0, spread: 5));
        var scalar = new T[n];
        BatchNormKernels.Affine<T>(x, scalar, layout, center, scale, shift, VectorWidth.Scalar, stream: false);

        // A pinned buffer with a sentinel on each side; the output starts `offset` elements past a 64-byte boundary.
        T[] buffer = GC.AllocateArray<T>(n + 64, pinned: true);
        int aligned = KernelTestData.ElementsToLine(buffer);
        int start = aligned + 16 + offset;
        Span<T> output = buffer.AsSpan(start, n);
        T sentinel = T.CreateTruncating(-7.25);
        buffer.AsSpan().Fill(sentinel);

        string because = $"{typeof(T).Name} {width} [{string.Join(", ", shape)}] offset {offset}";
        BatchNormKernels.Affine<T>(x, output, layout, center, scale, shift, width, stream: true);
        output.ToArray().Should().Equal(scalar, "out of place, " + because);
        buffer[start - 1].Should().Be(sentinel, because);
        buffer[start + n].Should().Be(sentinel, because);

        x.CopyTo(output);
        BatchNormKernels.Affine<T>(output, output, layout, center, scale, shift, width, stream: true);
        output.ToArray().Should().Equal(scalar, "in place, " + because);
    }

    /// <summary>
    /// Small channels-last batches of one to four vectors a row take <see cref="BatchNormKernels.SmallAffine{T}"/>: the bits
    /// of <see cref="BatchNormKernels.Affine{T}"/> on the scalar path, in place and not, for every row count of a small
    /// batch, and the float64 map within its three roundings. The rule is written out at its edges.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Small_batches_map_with_the_scalar_bits(int width)
    {
        BatchNormKernels.IsSmallAffine<float>(new ChannelLayout(8, 16, 1), VectorWidth.Vector512).Should().BeTrue();
        BatchNormKernels.IsSmallAffine<float>(new ChannelLayout(8, 64, 1), VectorWidth.Vector512).Should().BeTrue();
        BatchNormKernels.IsSmallAffine<float>(new ChannelLayout(8, 65, 1), VectorWidth.Vector512).Should().BeFalse();
        BatchNormKernels.IsSmallAffine<float>(new ChannelLayout(8, 15, 1), VectorWidth.Vector512).Should().BeFalse();
        BatchNormKernels.IsSmallAffine<float>(new ChannelLayout(9, 16, 1), VectorWidth.Vector512).Should().BeFalse();
        BatchNormKernels.IsSmallAffine<double>(new ChannelLayout(16, 8, 1), VectorWidth.Vector512).Should().BeTrue();
        BatchNormKernels.IsSmallAffine<double>(new ChannelLayout(2, 8, 4), VectorWidth.Vector512).Should().BeFalse();
        foreach (int channels in KernelTestData.SizesAroundWidths(70))
        {
            for (int rows = 1; rows <= 16; rows++)
            {
                SmallMap<float>((VectorWidth)width, rows, channels);
                SmallMap<double>((VectorWidth)width, rows, channels);
            }
        }
    }

    private static void SmallMap<T>(VectorWidth width, int rows, int channels)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var layout = new ChannelLayout(rows, channels, 1);
        if (!BatchNormKernels.IsSmallAffine<T>(layout, width))
        {
            return;
        }

        int n = rows * channels;
        T[] x = Tolerance.FromDouble<T>(KernelTestData.Data(n, n + channels, offset: 0.5, spread: 4));
        T[] center = Tolerance.FromDouble<T>(KernelTestData.Data(channels, rows, offset: 0.5, spread: 1));
        T[] scale = Tolerance.FromDouble<T>(KernelTestData.Data(channels, rows + 1, offset: 0, spread: 3));
        T[] shift = Tolerance.FromDouble<T>(KernelTestData.Data(channels, rows + 2, offset: 0, spread: 5));
        var expected = new T[n];
        BatchNormKernels.Affine<T>(x, expected, layout, center, scale, shift, VectorWidth.Scalar);
        var y = new T[n];
        BatchNormKernels.SmallAffine<T>(x, y, layout, ref center[0], ref scale[0], ref shift[0], width);
        T[] inPlace = (T[])x.Clone();
        BatchNormKernels.SmallAffine<T>(inPlace, inPlace, layout, ref center[0], ref scale[0], ref shift[0], width);

        string what = $"{typeof(T).Name} {width} [{rows}, {channels}]";
        y.Should().Equal(expected, what);
        inPlace.Should().Equal(expected, what + " in place");
        double[] xd = Tolerance.ToDouble<T>(x);
        var (reference, bound) = (new double[n], new double[n]);
        for (int i = 0; i < n; i++)
        {
            int c = i % channels;
            double centered = (xd[i] - double.CreateTruncating(center[c])) * double.CreateTruncating(scale[c]);
            reference[i] = centered + double.CreateTruncating(shift[c]);
            bound[i] = Math.Abs(centered) + Math.Abs(double.CreateTruncating(shift[c])) + Math.Abs(reference[i]);
        }

        Tolerance.ShouldBeClose(Tolerance.ToDouble<T>(y), reference, bound, 3 * Tolerance.Epsilon<T>(), 0, what + " against the float64 map");
    }

    private static void Check<T>(VectorWidth width, int[] shape, int axis)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = MomentsKernelTests.Product(shape);
        int channels = shape[axis];
        T[] x = Tolerance.FromDouble<T>(KernelTestData.Data(n, n + channels, offset: 0.5, spread: 4));
        T[] center = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 5, offset: 0.5, spread: 1));
        T[] scale = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 1, offset: 0, spread: 3));
        T[] shift = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 2, offset: 0, spread: 5));
        double[] xd = Tolerance.ToDouble<T>(x);
        double[] m = Tolerance.ToDouble<T>(center);
        double[] a = Tolerance.ToDouble<T>(scale);
        double[] b = Tolerance.ToDouble<T>(shift);
        double[] expected = new double[n];
        double[] bound = new double[n];
        for (int i = 0; i < n; i++)
        {
            int c = ReferenceBatchNorm.ChannelOf(i, shape, axis);
            expected[i] = ((xd[i] - m[c]) * a[c]) + b[c];
            bound[i] = Math.Abs((xd[i] - m[c]) * a[c]) + Math.Abs(b[c]) + Math.Abs(expected[i]);
        }

        var y = new T[n];
        BatchNormKernels.Affine<T>(x, y, ChannelLayout.FromShape(shape, axis), center, scale, shift, width);

        // One rounding each for the difference, the product and the sum.
        Tolerance.ShouldBeClose(
            Tolerance.ToDouble<T>(y), expected, bound, 3 * Tolerance.Epsilon<T>(), 0, $"{typeof(T).Name} {width} [{string.Join(", ", shape)}]");
    }

    private static void Guarded<T>(VectorWidth width, int[] shape, bool guardAfter)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = MomentsKernelTests.Product(shape);
        int channels = shape[1];
        var layout = ChannelLayout.FromShape(shape, 1);
        T[] x = Tolerance.FromDouble<T>(KernelTestData.Data(n, n, offset: 0.5, spread: 4));
        T[] center = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 6, offset: 0.5, spread: 1));
        T[] scale = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 3, offset: 0, spread: 3));
        T[] shift = Tolerance.FromDouble<T>(KernelTestData.Data(channels, 4, offset: 0, spread: 5));
        var scalar = new T[n];
        BatchNormKernels.Affine<T>(x, scalar, layout, center, scale, shift, VectorWidth.Scalar);

        using var input = new GuardedBuffer<T>(n, guardAfter);
        using var output = new GuardedBuffer<T>(n, guardAfter);
        using var guardedCenter = new GuardedBuffer<T>(channels, guardAfter);
        using var guardedScale = new GuardedBuffer<T>(channels, guardAfter);
        using var guardedShift = new GuardedBuffer<T>(channels, guardAfter);
        x.CopyTo(input.Span);
        center.CopyTo(guardedCenter.Span);
        scale.CopyTo(guardedScale.Span);
        shift.CopyTo(guardedShift.Span);

        BatchNormKernels.Affine<T>(input.Span, output.Span, layout, guardedCenter.Span, guardedScale.Span, guardedShift.Span, width);
        output.Span.ToArray().Should().Equal(scalar, $"out of place, {width}, [{string.Join(", ", shape)}]");

        BatchNormKernels.Affine<T>(input.Span, input.Span, layout, guardedCenter.Span, guardedScale.Span, guardedShift.Span, width);
        input.Span.ToArray().Should().Equal(scalar, $"in place, {width}, [{string.Join(", ", shape)}]");
    }
}
