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
    /// <summary>Channel counts up to this fold their coefficients on the stack; larger ones rent from the pool.</summary>
    private const int StackChannels = 256;

    /// <summary>
    /// Widest aligned part of a row, in bytes, that <see cref="AffineInterleavedRows{TVec, TOps, T}"/> walks whole: its
    /// coefficients (three times the row) and a pair of rows in and out (four times) then fit the 48 KiB L1 (7 x 6 KiB).
    /// Wider rows go a tile at a time. Measured (fifteenth session, the layer's inference, untiled against tiled): 6 KiB
    /// rows 1.27-1.28x a copy against 1.32-1.34x, 8 KiB rows 1.43-1.69x against 1.19-1.41x.
    /// </summary>
    private const int AffineUntiledRowBytes = 6144;

    /// <summary>
    /// Streams of rows the affine pass with streaming stores (from memory) walks side by side
    /// (<see cref="AffineShiftedRowStreams{TVec, TOps, T}"/>): each load of a vector of coefficients serves this many rows.
    /// </summary>
    private const int AffineRowStreams = 8;

    /// <summary>
    /// Widest part of a row, in bytes, that the affine pass with streaming stores (from memory) walks whole; wider rows go
    /// a tile of channels at a time (<see cref="AffineShiftedRowTilesStreaming{TVec, TOps, T}"/>), so that the three
    /// coefficient arrays of a tile (three times this) stay in the 48 KiB L1 beside the input stream. Measured (seventeenth
    /// session, double [3136,2048], 16 KiB rows, fastest of 16 rounds against a copy, ABBA order): rows whole 1.16-1.23x,
    /// tiles of 8 KiB 0.75-0.79x, of 4 KiB 0.95-0.98x.
    /// </summary>
    private const int StreamingTileBytes = 8192;

    /// <summary>
    /// Rows per block when wide rows in cache are walked a tile of channels at a time
    /// (<see cref="AffineInterleavedTiles{TVec, TOps, T}"/>, <see cref="InputGradientWideTilesDownward{TVec, TOps, T, TStream}"/>).
    /// </summary>
    private const int TiledBlockRows = 32;

    /// <summary>
    /// <c>y = gamma * (x - mean) / sqrt(variance + epsilon) + beta</c>: the statistics and weights are folded once
    /// (<see cref="FoldCoefficients{TStat, TWeight, T}"/>) and the data is mapped by <see cref="Affine{T}"/>.
    /// </summary>
    public static void Normalize<TStat, TWeight, T>(
        ReadOnlySpan<T> x, Span<T> y, ChannelLayout layout,
        ReadOnlySpan<TStat> mean, ReadOnlySpan<TStat> variance, ReadOnlySpan<TWeight> gamma, ReadOnlySpan<TWeight> beta,
        double epsilon, VectorWidth width, int maxDegree = 1)
        where TStat : unmanaged, INumberBase<TStat>
        where TWeight : unmanaged, INumberBase<TWeight>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int channels = layout.Channels;
        T[]? rented = null;
        // Above StackChannels the three go a quarter page apart (laid end to end they put each channel's three at one page offset).
        int length = CacheLine.ReadBesideLength<T>(3, channels, spread: channels > StackChannels);
        Span<T> buffer = channels <= StackChannels ? stackalloc T[length] : (rented = ArrayPool<T>.Shared.Rent(length));
        Span<int> starts = stackalloc int[3];
        CacheLine.PlaceReadBeside(buffer[..length], channels, channels > StackChannels, CacheLine.PageOffset(in MemoryMarshal.GetReference(y)), starts);
        try
        {
            Span<T> center = buffer.Slice(starts[0], channels);
            Span<T> scale = buffer.Slice(starts[1], channels);
            Span<T> shift = buffer.Slice(starts[2], channels);
            FoldCoefficients(mean, variance, gamma, beta, epsilon, center, scale, shift);
            Affine(x, y, layout, center, scale, shift, width, maxDegree);
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
    /// The per-channel affine map every mode ends in: <c>y = (x - center[c]) * scale[c] + shift[c]</c> (subtract,
    /// multiply, add; never fused, so every width gives the same bits). Centering first keeps the map accurate when the
    /// mean is large against the spread: <c>x - center</c> is exact near the mean, where <c>x * scale + shift</c> would
    /// lose <c>|mean * scale|</c> ulps. <paramref name="y"/> may be <paramref name="x"/> itself.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Affine<T>(
        ReadOnlySpan<T> x, Span<T> y, ChannelLayout layout, ReadOnlySpan<T> center, ReadOnlySpan<T> scale, ReadOnlySpan<T> shift,
        VectorWidth width, int maxDegree = 1, bool? stream = null)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Debug.Assert(x.Length == layout.Length && y.Length == layout.Length);
        Debug.Assert(center.Length == layout.Channels && scale.Length == layout.Channels && shift.Length == layout.Channels);
        ChannelFold fold = ChannelFold.For<T>(layout, width);
        if (fold.IsFolded)
        {
            // Few channels: the folded rows with the coefficients repeated (the same operations per element, so the
            // same bits), then the remaining rows as they are.
            Span<T> scratch = stackalloc T[3 * fold.Folded.Channels];
            int split = fold.FoldedLength;
            Affine<T>(
                x[..split], y[..split], fold.Folded, fold.Repeat(center, scratch, 0), fold.Repeat(scale, scratch, 1), fold.Repeat(shift, scratch, 2),
                width, maxDegree, stream);
            if (fold.Tail.Outer != 0)
            {
                Affine<T>(x[split..], y[split..], fold.Tail, center, scale, shift, width, 1, stream: false);
            }

            return;
        }

        bool prefetch = Prefetch.IsWorthIt<T>(layout.Length, Prefetch.ForwardTensors);
        bool streaming = stream ?? NonTemporal.IsWorthIt<T>(layout.Length);
        if (maxDegree != 1 && Partition.IsLarge(layout))
        {
            AffineParallel(x, y, layout, center, scale, shift, width, maxDegree, prefetch, streaming);
            return;
        }

        AffineSequential(x, y, layout, center, scale, shift, width, prefetch, streaming);
    }

    /// <summary>
    /// Whether <see cref="Affine{T}"/> from <paramref name="x"/> into <paramref name="y"/> on one thread walks the rows from
    /// the last: channels-last rows in cache, narrow or sharing a phase, whose output lies just above the input
    /// (<see cref="CacheLine.WalkDown"/>). The statistics before it then end on the rows it starts with.
    /// </summary>
    internal static bool AffineWalksDown<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ChannelLayout layout, VectorWidth width)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int lanes = VectorWidths.Lanes<T>(width);
        int channels = layout.Channels;
        if (!layout.IsChannelsLast || layout.Length == 0 || channels < lanes || ChannelFold.For<T>(layout, width).IsFolded
            || Prefetch.IsWorthIt<T>(layout.Length, Prefetch.ForwardTensors) || NonTemporal.IsWorthIt<T>(layout.Length)
            || (channels > 4 * lanes && RowPhase.Of<T>(y, layout.Outer, channels, lanes) < 0))
        {
            return false;
        }

        return CacheLine.WalkDown(in y[0], in x[0], in x[0], channels * Unsafe.SizeOf<T>());
    }

    /// <summary>
    /// Whether the affine map over <paramref name="layout"/> at <paramref name="width"/> can take
    /// <see cref="SmallAffine{T}"/>: a small channels-last batch (<see cref="IsSmallBatch{T}"/>) whose rows are one to four
    /// vectors.
    /// </summary>
    internal static bool IsSmallAffine<T>(ChannelLayout layout, VectorWidth width)
        where T : unmanaged => IsSmallBatch<T>(layout) && layout.Channels >= VectorWidths.Lanes<T>(width) && layout.Channels <= 4 * VectorWidths.Lanes<T>(width);

    /// <summary>
    /// <see cref="Affine{T}"/> over a small batch (<see cref="IsSmallAffine{T}"/>): the loop it ends in,
    /// <see cref="AffineNarrowRows{TVec, TOps, T}"/>, without the checks for folding, prefetching, streaming and threads
    /// that cannot apply at this size. The same bits. The coefficients (<c>m</c>, <c>a</c> and <c>b</c> of
    /// <c>y = (x - m) * a + b</c>) are given by their first elements, C values each: the layer's fold holds them in one
    /// pinned array, and references skip the spans' bounds checks.
    /// </summary>
    public static void SmallAffine<T>(ReadOnlySpan<T> x, Span<T> y, ChannelLayout layout, ref T m, ref T a, ref T b, VectorWidth width)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Debug.Assert(IsSmallAffine<T>(layout, width) && x.Length == layout.Length && y.Length == layout.Length);
        ref T src = ref MemoryMarshal.GetReference(x);
        ref T dst = ref MemoryMarshal.GetReference(y);
        switch (width)
        {
            case VectorWidth.Vector512:
                AffineNarrowRows<Vector512<T>, Vector512Ops<T>, T>(ref src, ref dst, layout.Outer, layout.Channels, ref m, ref a, ref b);
                break;
            case VectorWidth.Vector256:
                AffineNarrowRows<Vector256<T>, Vector256Ops<T>, T>(ref src, ref dst, layout.Outer, layout.Channels, ref m, ref a, ref b);
                break;
            case VectorWidth.Vector128:
                AffineNarrowRows<Vector128<T>, Vector128Ops<T>, T>(ref src, ref dst, layout.Outer, layout.Channels, ref m, ref a, ref b);
                break;
            default:
                AffineNarrowRows<T, ScalarOps<T>, T>(ref src, ref dst, layout.Outer, layout.Channels, ref m, ref a, ref b);
                break;
        }
    }

    /// <summary>The parallel branch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void AffineParallel<T>(
        ReadOnlySpan<T> x, Span<T> y, ChannelLayout layout, ReadOnlySpan<T> center, ReadOnlySpan<T> scale, ReadOnlySpan<T> shift,
        VectorWidth width, int maxDegree, bool prefetch, bool stream)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        fixed (T* px = x)
        fixed (T* py = y)
        fixed (T* pm = center)
        fixed (T* pa = scale)
        fixed (T* pb = shift)
        {
            Partition.ForElementwise(layout, maxDegree, new AffineParts<T>(px, py, pm, pa, pb, width, prefetch, stream));
        }
    }

    /// <summary>One part of <see cref="AffineParallel{T}"/> (the buffers are pinned by the caller).</summary>
    private readonly unsafe struct AffineParts<T>(T* x, T* y, T* center, T* scale, T* shift, VectorWidth width, bool prefetch, bool stream) : IElementwiseBody
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(ChannelLayout part, nint element, int channel, nint maskStart) => AffineSequential(
            new ReadOnlySpan<T>(x + element, part.Length), new Span<T>(y + element, part.Length), part,
            new ReadOnlySpan<T>(center + channel, part.Channels), new ReadOnlySpan<T>(scale + channel, part.Channels),
            new ReadOnlySpan<T>(shift + channel, part.Channels), width, prefetch, stream);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AffineSequential<T>(
        ReadOnlySpan<T> x, Span<T> y, ChannelLayout layout, ReadOnlySpan<T> center, ReadOnlySpan<T> scale, ReadOnlySpan<T> shift, VectorWidth width, bool prefetch, bool stream)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        // Wide channels-last rows in cache that share a phase take AffineInterleavedRows (-1: they do not). The phase is
        // the output's: aligned stores, split loads when the input's differs (see RowPhase).
        int lanes = VectorWidths.Lanes<T>(width);
        int phase = layout.IsChannelsLast && !prefetch && !stream && layout.Channels > 4 * lanes
            ? RowPhase.Of<T>(y, layout.Outer, layout.Channels, lanes)
            : -1;
        ref T src = ref MemoryMarshal.GetReference(x);
        ref T dst = ref MemoryMarshal.GetReference(y);
        ref T m = ref MemoryMarshal.GetReference(center);
        ref T a = ref MemoryMarshal.GetReference(scale);
        ref T b = ref MemoryMarshal.GetReference(shift);
        switch (width)
        {
            case VectorWidth.Vector512:
                Affine<Vector512<T>, Vector512Ops<T>, T>(ref src, ref dst, layout, ref m, ref a, ref b, prefetch, stream, phase);
                break;
            case VectorWidth.Vector256:
                Affine<Vector256<T>, Vector256Ops<T>, T>(ref src, ref dst, layout, ref m, ref a, ref b, prefetch, stream, phase);
                break;
            case VectorWidth.Vector128:
                Affine<Vector128<T>, Vector128Ops<T>, T>(ref src, ref dst, layout, ref m, ref a, ref b, prefetch, stream, phase);
                break;
            default:
                Affine<T, ScalarOps<T>, T>(ref src, ref dst, layout, ref m, ref a, ref b, prefetch, stream, phase);
                break;
        }
    }

    /// <summary>
    /// Wide channels-last rows in cache whose output rows all start at the same phase (<see cref="RowPhase"/>, zero
    /// included), walked as one flat run of aligned vectors from that phase, so that every store is aligned (the loads
    /// are too when the input shares the phase). A flat row is C elements from <c>phase + q * C</c>: its vectors map the
    /// channels from <c>phase</c> on, and, when the phase is not zero, its last vector maps the row's last
    /// <c>W - phase</c> channels and the next row's first <c>phase</c>. The coefficients of those vectors are first
    /// copied into one interleaved array, vector by vector (centre, scale, shift of the first vector, then of the second,
    /// ...), so the loop reads them as one sequential stream beside the two rows it maps per load. Only the tensor's first
    /// <c>phase</c> and last <c>W - phase</c> elements are left, one overlapping vector each, computed before any store
    /// (so in place stays exact, and an element written twice gets the same value twice). Rows whose aligned part is wider
    /// than <see cref="AffineUntiledRowBytes"/> take <see cref="AffineInterleavedTiles{TVec, TOps, T}"/>. Requires
    /// channels a multiple of the width and 0 &lt;= phase &lt; width. <paramref name="k"/> takes <c>3 * channels</c>
    /// elements.
    /// </summary>
    /// <remarks>
    /// Against the three phase-shifted copies this replaced, alternating in one process (float32 [256,1024], the layer's
    /// inference, 18 rounds in six processes, medians): 1.15-1.39x a copy against 1.16-1.48x, a lower median in all 18.
    /// Double [256,1024] moved within the noise then; the tiles took its inference from 1.43-1.69x to 1.19-1.41x (fifteenth
    /// session, fastest of 15 rounds, eight rounds in four processes). Other shapes measured ([64,1024], [1024,256], [128,512], [2048,96],
    /// [64,80], double [1024,160]) moved within the noise. Until the forty-second session each row was walked from its
    /// own phase and its two ends were covered by overlapping vectors stored after the row: two split loads and two
    /// split stores a row, which cost float32 [256,1024] about a tenth of its time when the output was off a line.
    /// <para>
    /// Since the forty-third session the walk goes from the last vector to the first when the output's page offset lies
    /// just above the input's (<see cref="CacheLine.WalkDown"/>), as it does for two large arrays allocated one after the
    /// other. On the AMD EPYC (Zen 4) of that session, the layer's float32 inference on such arrays, the two walks
    /// alternating in one process, fastest of 15 rounds against a copy: [256,1024] 1.26x against 1.72-2.17x, [1024,256]
    /// 1.18-1.23x against 1.60-1.62x, [512,512] 1.21-1.27x against 1.51-1.61x, [2048,96] 0.84-0.87x against 1.09-1.16x,
    /// and, tiled, [128,4096] 1.43-1.44x against 2.08-2.19x.
    /// </para>
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AffineInterleavedRows<TVec, TOps, T>(ref T x, ref T y, int rows, int channels, int phase, ref T center, ref T scale, ref T shift, ref T k)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        nuint w = (nuint)width;
        nuint p = (nuint)phase;
        nuint stride = (nuint)channels;
        nuint last = (nuint)(channels - width);
        nuint aligned = 0;
        for (nuint c = p; c <= last; c += w, aligned += 3 * w)
        {
            TOps.Store(TOps.Load(ref center, c), ref k, aligned);
            TOps.Store(TOps.Load(ref scale, c), ref k, aligned + w);
            TOps.Store(TOps.Load(ref shift, c), ref k, aligned + (2 * w));
        }

        // The vector that wraps into the next row: channels last + p to the end, then 0 to p.
        bool ends = phase != 0;
        nuint end = aligned;
        if (ends)
        {
            for (nuint l = 0; l < w; l++)
            {
                nuint c = l < w - p ? last + p + l : l - (w - p);
                Unsafe.Add(ref k, end + l) = Unsafe.Add(ref center, c);
                Unsafe.Add(ref k, end + w + l) = Unsafe.Add(ref scale, c);
                Unsafe.Add(ref k, end + (2 * w) + l) = Unsafe.Add(ref shift, c);
            }

            end += 3 * w;
        }

        // The tensor's first and last vectors, before any store; the last flat row stops one vector short of its end.
        nuint total = (nuint)rows * stride;
        TVec head = default, tail = default;
        if (ends)
        {
            head = MapVector<TVec, TOps, T>(TOps.Load(ref x, 0), TOps.Load(ref center, 0), TOps.Load(ref scale, 0), TOps.Load(ref shift, 0));
            tail = MapVector<TVec, TOps, T>(TOps.Load(ref x, total - w), TOps.Load(ref center, last), TOps.Load(ref scale, last), TOps.Load(ref shift, last));
        }

        bool down = CacheLine.WalkDown(in y, in x, in x, channels * Unsafe.SizeOf<T>());
        if (aligned > 3 * (nuint)InterleavedChannels<T>(AffineUntiledRowBytes))
        {
            AffineInterleavedTiles<TVec, TOps, T>(ref x, ref y, rows, channels, phase, aligned, end, ref k, down);
        }
        else if (down)
        {
            // The same rows from the last: the last flat row alone, then pairs of whole ones, each from its end.
            int whole = rows - 1;
            AffineInterleavedRowDown<TVec, TOps, T>(ref x, ref y, ((nuint)whole * stride) + p, 0, 0, aligned, ref k);
            int r = whole;
            for (; r >= 2; r -= 2)
            {
                nuint o0 = ((nuint)(r - 2) * stride) + p;
                AffineInterleavedPairDown<TVec, TOps, T>(ref x, ref y, o0, o0 + stride, 0, 0, end, ref k);
            }

            if (r > 0)
            {
                AffineInterleavedRowDown<TVec, TOps, T>(ref x, ref y, p, 0, 0, end, ref k);
            }
        }
        else
        {
            // Pairs of whole flat rows; the last flat row, which stops at `aligned`, goes alone.
            int whole = rows - 1;
            int r = 0;
            for (; r <= whole - 2; r += 2)
            {
                nuint o0 = ((nuint)r * stride) + p;
                AffineInterleavedPair<TVec, TOps, T>(ref x, ref y, o0, o0 + stride, 0, 0, end, ref k);
            }

            if (r < whole)
            {
                AffineInterleavedRow<TVec, TOps, T>(ref x, ref y, ((nuint)r * stride) + p, 0, 0, end, ref k);
            }

            AffineInterleavedRow<TVec, TOps, T>(ref x, ref y, ((nuint)whole * stride) + p, 0, 0, aligned, ref k);
        }

        if (ends)
        {
            TOps.Store(head, ref y, 0);
            TOps.Store(tail, ref y, total - w);
        }
    }

    /// <summary>
    /// <see cref="AffineInterleavedRows{TVec, TOps, T}"/> for rows wider than <see cref="AffineUntiledRowBytes"/>: a tile
    /// of <see cref="WideTileBytes"/> of channels at a time through blocks of <see cref="TiledBlockRows"/> flat rows, two
    /// rows per load of the coefficients, so that the tile's coefficients stay in L1 beside the rows' streams. The flat
    /// rows start at <paramref name="phase"/>; <paramref name="end"/> is the length of the interleaved coefficients in
    /// <paramref name="k"/>, and the last flat row, which goes alone, stops at <paramref name="aligned"/>. The caller
    /// covers the tensor's two ends.
    /// </summary>
    /// <remarks>
    /// Whole rows of 8 KiB (24 KiB of coefficients and 32 KiB of data per pair of rows) do not leave the coefficients in
    /// the 48 KiB L1 until the next pair. Plain loops (fifteenth session, fastest of 15 rounds against a copy): double
    /// [256,1024] 1.15-1.18x with 4 KiB tiles through 32 rows against 1.33-1.37x whole rows, float32 [128,4096]
    /// 1.27-1.37x against 1.67-1.84x; 2 KiB tiles or blocks of 16 to 128 rows measured the same or slower. Narrower rows
    /// keep the untiled loop: blocks of two rows through this one measured 1.29-1.41x against 1.13-1.17x on [1024,256],
    /// and 4 KiB tiles of 6 KiB rows ([256,1536]) 1.32-1.34x against 1.27-1.28x.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AffineInterleavedTiles<TVec, TOps, T>(ref T x, ref T y, int rows, int channels, int phase, nuint aligned, nuint end, ref T k, bool down)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint stride = (nuint)channels;
        nuint tile = 3 * (nuint)TileChannels<T>();
        if (down)
        {
            AffineInterleavedTilesDown<TVec, TOps, T>(ref x, ref y, rows, stride, (nuint)phase, aligned, end, tile, ref k);
            return;
        }

        for (int r0 = 0; r0 < rows; r0 += TiledBlockRows)
        {
            int r1 = Math.Min(rows, r0 + TiledBlockRows);
            int whole = Math.Min(r1, rows - 1);
            for (nuint j0 = 0; j0 < end; j0 += tile)
            {
                nuint j1 = Math.Min(end, j0 + tile);
                nuint c0 = j0 / 3;
                int r = r0;
                for (; r <= whole - 2; r += 2)
                {
                    nuint o0 = ((nuint)r * stride) + (nuint)phase;
                    AffineInterleavedPair<TVec, TOps, T>(ref x, ref y, o0, o0 + stride, c0, j0, j1, ref k);
                }

                if (r < whole)
                {
                    AffineInterleavedRow<TVec, TOps, T>(ref x, ref y, ((nuint)r * stride) + (nuint)phase, c0, j0, j1, ref k);
                }

                // The last flat row, alone: it has no vector past `aligned`.
                if (r1 == rows && j0 < aligned)
                {
                    AffineInterleavedRow<TVec, TOps, T>(ref x, ref y, ((nuint)(rows - 1) * stride) + (nuint)phase, c0, j0, Math.Min(j1, aligned), ref k);
                }
            }
        }
    }

    /// <summary>
    /// Two rows (at <paramref name="o0"/> and <paramref name="o1"/>) over the interleaved coefficients
    /// <c>[j0, j1)</c> of <paramref name="k"/>, whose first vector maps channel <paramref name="c0"/>: one load of each
    /// coefficient vector for both rows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffineInterleavedPair<TVec, TOps, T>(ref T x, ref T y, nuint o0, nuint o1, nuint c0, nuint j0, nuint j1, ref T k)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint w = (nuint)TOps.Count;
        for (nuint c = c0, j = j0; j < j1; c += w, j += 3 * w)
        {
            AffineInterleavedVectors<TVec, TOps, T>(ref x, ref y, o0 + c, o1 + c, j, ref k);
        }
    }

    /// <summary>
    /// One vector of two rows (at <paramref name="i0"/> and <paramref name="i1"/>) mapped by the interleaved coefficient
    /// vectors at <paramref name="j"/> of <paramref name="k"/>, loaded once for both.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffineInterleavedVectors<TVec, TOps, T>(ref T x, ref T y, nuint i0, nuint i1, nuint j, ref T k)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint w = (nuint)TOps.Count;
        TVec m = TOps.Load(ref k, j);
        TVec a = TOps.Load(ref k, j + w);
        TVec b = TOps.Load(ref k, j + (2 * w));
        TVec v0 = TOps.Load(ref x, i0);
        TVec v1 = TOps.Load(ref x, i1);
        TOps.Store(MapVector<TVec, TOps, T>(v0, m, a, b), ref y, i0);
        TOps.Store(MapVector<TVec, TOps, T>(v1, m, a, b), ref y, i1);
    }

    /// <summary>One row of <see cref="AffineInterleavedPair{TVec, TOps, T}"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffineInterleavedRow<TVec, TOps, T>(ref T x, ref T y, nuint o0, nuint c0, nuint j0, nuint j1, ref T k)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint w = (nuint)TOps.Count;
        for (nuint c = c0, j = j0; j < j1; c += w, j += 3 * w)
        {
            AffineInterleavedVector<TVec, TOps, T>(ref x, ref y, o0 + c, j, ref k);
        }
    }

    /// <summary>One vector of one row (at <paramref name="i"/>) of <see cref="AffineInterleavedVectors{TVec, TOps, T}"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffineInterleavedVector<TVec, TOps, T>(ref T x, ref T y, nuint i, nuint j, ref T k)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint w = (nuint)TOps.Count;
        TVec d = TOps.Subtract(TOps.Load(ref x, i), TOps.Load(ref k, j));
        TOps.Store(TOps.Add(TOps.Multiply(d, TOps.Load(ref k, j + w)), TOps.Load(ref k, j + (2 * w))), ref y, i);
    }

    /// <summary>
    /// <see cref="AffineInterleavedTiles{TVec, TOps, T}"/> walked from its end: blocks, tiles, pairs of rows and vectors
    /// from the last (see <see cref="CacheLine.WalkDown"/>). The last flat row, which stops at <paramref name="aligned"/>,
    /// goes alone; every element gets the same operations, so the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AffineInterleavedTilesDown<TVec, TOps, T>(ref T x, ref T y, int rows, nuint stride, nuint phase, nuint aligned, nuint end, nuint tile, ref T k)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int blocks = (rows + TiledBlockRows - 1) / TiledBlockRows;
        for (int block = blocks - 1; block >= 0; block--)
        {
            int r0 = block * TiledBlockRows;
            int r1 = Math.Min(rows, r0 + TiledBlockRows);
            int whole = Math.Min(r1, rows - 1);
            for (nuint j0 = (end - 1) / tile * tile; ; j0 -= tile)
            {
                nuint j1 = Math.Min(end, j0 + tile);
                nuint c0 = j0 / 3;
                if (r1 == rows && j0 < aligned)
                {
                    AffineInterleavedRowDown<TVec, TOps, T>(ref x, ref y, ((nuint)(rows - 1) * stride) + phase, c0, j0, Math.Min(j1, aligned), ref k);
                }

                int r = whole;
                for (; r >= r0 + 2; r -= 2)
                {
                    nuint o0 = ((nuint)(r - 2) * stride) + phase;
                    AffineInterleavedPairDown<TVec, TOps, T>(ref x, ref y, o0, o0 + stride, c0, j0, j1, ref k);
                }

                if (r > r0)
                {
                    AffineInterleavedRowDown<TVec, TOps, T>(ref x, ref y, ((nuint)r0 * stride) + phase, c0, j0, j1, ref k);
                }

                if (j0 == 0)
                {
                    break;
                }
            }
        }
    }

    /// <summary><see cref="AffineInterleavedPair{TVec, TOps, T}"/> from the last vector to the first.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffineInterleavedPairDown<TVec, TOps, T>(ref T x, ref T y, nuint o0, nuint o1, nuint c0, nuint j0, nuint j1, ref T k)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint w = (nuint)TOps.Count;
        for (nuint c = c0 + ((j1 - j0) / 3), j = j1; j > j0;)
        {
            c -= w;
            j -= 3 * w;
            AffineInterleavedVectors<TVec, TOps, T>(ref x, ref y, o0 + c, o1 + c, j, ref k);
        }
    }

    /// <summary>One row of <see cref="AffineInterleavedPairDown{TVec, TOps, T}"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffineInterleavedRowDown<TVec, TOps, T>(ref T x, ref T y, nuint o0, nuint c0, nuint j0, nuint j1, ref T k)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint w = (nuint)TOps.Count;
        for (nuint c = c0 + ((j1 - j0) / 3), j = j1; j > j0;)
        {
            c -= w;
            j -= 3 * w;
            AffineInterleavedVector<TVec, TOps, T>(ref x, ref y, o0 + c, j, ref k);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Affine<TVec, TOps, T>(ref T x, ref T y, ChannelLayout layout, ref T center, ref T scale, ref T shift, bool prefetch, bool stream, int phase = -1)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (stream && TOps.CanStream && AffineStreaming<TVec, TOps, T>(ref x, ref y, layout, ref center, ref scale, ref shift, prefetch))
        {
            return;
        }

        int width = TOps.Count;
        int channels = layout.Channels;
        if (layout.IsChannelsLast)
        {
            if (channels < width)
            {
                Affine<T, ScalarOps<T>, T>(ref x, ref y, layout, ref center, ref scale, ref shift, prefetch, stream: false);
                return;
            }

            if (channels <= 4 * width)
            {
                bool down = CacheLine.WalkDown(in y, in x, in x, channels * Unsafe.SizeOf<T>());
                AffineNarrowRows<TVec, TOps, T>(ref x, ref y, layout.Outer, channels, ref center, ref scale, ref shift, down);
            }
            else if (phase >= 0)
            {
                int length = (3 * channels) + CacheLine.Slack<T>();
                T[] rented = ArrayPool<T>.Shared.Rent(length);
                try
                {
                    AffineInterleavedRows<TVec, TOps, T>(
                        ref x, ref y, layout.Outer, channels, phase, ref center, ref scale, ref shift,
                        ref MemoryMarshal.GetReference(CacheLine.Align(rented.AsSpan(0, length), 3 * channels)));
                }
                finally
                {
                    ArrayPool<T>.Shared.Return(rented);
                }
            }
            else
            {
                AffineRows<TVec, TOps, T>(ref x, ref y, layout.Outer, channels, ref center, ref scale, ref shift, prefetch);
            }
        }
        else
        {
            int inner = layout.Inner;
            if (inner < width)
            {
                Affine<T, ScalarOps<T>, T>(ref x, ref y, layout, ref center, ref scale, ref shift, prefetch, stream: false);
                return;
            }

            // The runs are one contiguous stream: walked from its end when y's page offset lies just above x's. On the
            // Zen 4 machine, arrays allocated one after the other, the two walks alternating in one process: float32
            // [16,64,32,32] 1.08-1.14x a copy against 1.57-1.59x, [8,128,16,16] 1.11x against 1.60-1.75x.
            bool down = CacheLine.WalkDown(in y, in x, in x, 0);
            for (int oo = 0; oo < layout.Outer; oo++)
            {
                int o = down ? layout.Outer - 1 - oo : oo;
                for (int cc = 0; cc < channels; cc++)
                {
                    int c = down ? channels - 1 - cc : cc;
                    nint runStart = ((nint)o * channels + c) * inner;
                    TVec m = TOps.Broadcast(Unsafe.Add(ref center, c)), a = TOps.Broadcast(Unsafe.Add(ref scale, c)), b = TOps.Broadcast(Unsafe.Add(ref shift, c));
                    if (down)
                    {
                        AffineRunDown<TVec, TOps, T>(ref Unsafe.Add(ref x, runStart), ref Unsafe.Add(ref y, runStart), inner, m, a, b);
                    }
                    else
                    {
                        AffineRun<TVec, TOps, T>(ref Unsafe.Add(ref x, runStart), ref Unsafe.Add(ref y, runStart), inner, m, a, b);
                    }
                }
            }
        }
    }

    /// <summary>
    /// The affine map with streaming stores (<see cref="NonTemporal"/>), for outputs too large for the caches. Every
    /// vector store is aligned: the elements before the first aligned position of a stretch and after its last whole
    /// vector go through the scalar map (the same three operations, so the same bits), and no element is written twice,
    /// so in place stays exact. Returns false, having written nothing, when the output is not aligned to its element
    /// size or the rows (runs) are shorter than a vector; the caller then takes the plain path.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe bool AffineStreaming<TVec, TOps, T>(ref T x, ref T y, ChannelLayout layout, ref T center, ref T scale, ref T shift, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        int channels = layout.Channels;
        if ((layout.IsChannelsLast ? channels : layout.Inner) < width)
        {
            return false;
        }

        // Pinned: the alignment found here must hold until the last store.
        fixed (T* output = &y)
        {
            int head = NonTemporal.ElementsToAlignment<T>(output, width * sizeof(T));
            if (head < 0)
            {
                return false;
            }

            if (layout.IsChannelsLast)
            {
                AffineRowsStreaming<TVec, TOps, T>(ref x, ref y, layout.Length, channels, head, ref center, ref scale, ref shift, prefetch);
            }
            else if (HasShortRuns<T>(layout))
            {
                AffineShortRunsStreaming<TVec, TOps, T>(ref x, ref y, layout, head, ref center, ref scale, ref shift, prefetch);
            }
            else
            {
                // Run k is channel k mod C of outer index k / C, at k * inner. From memory the first half of the runs
                // goes beside the second, pair by pair (two streams read faster than one); an odd middle run goes alone.
                int inner = layout.Inner;
                int runs = layout.Outer * channels;
                int pairs = prefetch ? runs / 2 : 0;
                int second = runs - pairs;
                for (int k = 0; k < pairs; k++)
                {
                    AffineTwoRunsStreaming<TVec, TOps, T>(
                        new AffineStreamRun<T>(ref x, ref y, ref center, ref scale, ref shift, k, channels, inner, width),
                        new AffineStreamRun<T>(ref x, ref y, ref center, ref scale, ref shift, k + second, channels, inner, width),
                        inner);
                }

                for (int k = pairs; k < second; k++)
                {
                    AffineRunStreaming<TVec, TOps, T>(new AffineStreamRun<T>(ref x, ref y, ref center, ref scale, ref shift, k, channels, inner, width), inner, prefetch);
                }
            }
        }

        NonTemporal.Fence();
        return true;
    }

    /// <summary>
    /// Channels-first runs shorter than <see cref="ShortRunBytes"/> (at least a vector) with streaming stores: the whole
    /// tensor as one stream of aligned vectors of y from element <paramref name="head"/> (the elements before it, and after
    /// the last whole vector, through the scalar map). A vector that straddles two runs takes each lane's coefficients from
    /// its own run's channel (a select by <see cref="IVectorOps{TVec, T}.LanesBelow"/>): every element gets the operations,
    /// and the bits, of its channel's map. Run by run, a 49-element run of a 7x7 map took up to 15 elements one by one at
    /// each end: float32 [256, 512, 7, 7] inference took 2.3x a copy.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AffineShortRunsStreaming<TVec, TOps, T>(ref T x, ref T y, ChannelLayout layout, int head, ref T center, ref T scale, ref T shift, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        int inner = layout.Inner;
        int channels = layout.Channels;
        nint length = layout.Length;
        nint i = Math.Min(head, length);
        for (nint e = 0; e < i; e++)
        {
            MapElement(ref x, ref y, e, ref center, ref scale, ref shift, e / inner % channels);
        }

        // The coefficients of the current run's channel and of the next run's.
        var runs = new RunCursor(i, inner, channels);
        int r = runs.Channel, n = runs.Next;
        TVec m = TOps.Broadcast(Unsafe.Add(ref center, r)), a = TOps.Broadcast(Unsafe.Add(ref scale, r)), b = TOps.Broadcast(Unsafe.Add(ref shift, r));
        TVec nm = TOps.Broadcast(Unsafe.Add(ref center, n)), na = TOps.Broadcast(Unsafe.Add(ref scale, n)), nb = TOps.Broadcast(Unsafe.Add(ref shift, n));
        for (; i <= length - width; i += width)
        {
            if (prefetch)
            {
                Prefetch.Ahead(ref x, (nuint)i);
            }

            nint inRun = runs.InRun(i);
            TVec lm = m, la = a, lb = b;
            if (inRun < width)
            {
                TVec mask = TOps.LanesBelow((int)inRun);
                lm = TOps.Select(mask, m, nm);
                la = TOps.Select(mask, a, na);
                lb = TOps.Select(mask, b, nb);
            }

            TOps.StoreStreaming(MapVector<TVec, TOps, T>(TOps.Load(ref x, (nuint)i), lm, la, lb), ref y, (nuint)i);
            if (inRun <= width)
            {
                runs.Advance();
                (m, a, b) = (nm, na, nb);
                n = runs.Next;
                nm = TOps.Broadcast(Unsafe.Add(ref center, n));
                na = TOps.Broadcast(Unsafe.Add(ref scale, n));
                nb = TOps.Broadcast(Unsafe.Add(ref shift, n));
            }
        }

        for (; i < length; i++)
        {
            MapElement(ref x, ref y, i, ref center, ref scale, ref shift, i / inner % channels);
        }
    }

    /// <summary>Element <paramref name="i"/> of y through the scalar map with the coefficients at <paramref name="c"/>: <c>(x - center) * scale + shift</c>, the vector map's operations.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MapElement<T>(ref T x, ref T y, nint i, ref T center, ref T scale, ref T shift, nint c)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        Unsafe.Add(ref y, i) = ((Unsafe.Add(ref x, i) - Unsafe.Add(ref center, c)) * Unsafe.Add(ref scale, c)) + Unsafe.Add(ref shift, c);

    /// <summary>
    /// Channels-last rows with streaming stores, walked as one flat stretch of aligned vectors from element
    /// <paramref name="head"/> on: a vector may straddle two rows, so its coefficients come from copies extended past the
    /// last channel (<c>ext[j] = coefficient[j mod C]</c>). Requires channels &gt;= width. The three copies are placed so
    /// that their element <paramref name="head"/> starts a 64-byte line (<see cref="CacheLine.AlignAt{T}"/>), so with C a
    /// multiple of the width no coefficient load spans two lines. The layer's float32 [3136,2048] inference took 0.77-0.79
    /// of its time with the copies where the pool put them (builds alternating in ABBA order in one process, fastest of
    /// 16 rounds; sixteenth session); double [3136,1024] did not change (1.02-1.07). Prefetched rows with C a multiple of
    /// the width first go as <see cref="AffineRowStreams"/> streams of rows side by side
    /// (<see cref="AffineShiftedRowStreams{TVec, TOps, T}"/>); the flat walk then finishes the last row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AffineRowsStreaming<TVec, TOps, T>(
        ref T x, ref T y, nint length, int channels, int head, ref T center, ref T scale, ref T shift, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        int extended = channels + width;
        int stride = CacheLine.RoundUp<T>(extended);
        int bufferLength = (3 * stride) + CacheLine.Slack<T>();
        T[]? rented = null;
        Span<T> buffer = channels <= StackChannels
            ? stackalloc T[bufferLength]
            : (rented = ArrayPool<T>.Shared.Rent(bufferLength));
        Span<T> coefficients = CacheLine.AlignAt(buffer, head, 3 * stride);
        try
        {
            ref T m = ref MemoryMarshal.GetReference(coefficients);
            ref T a = ref Unsafe.Add(ref m, stride);
            ref T b = ref Unsafe.Add(ref a, stride);
            ExtendPastLastChannel(ref center, channels, ref m, extended);
            ExtendPastLastChannel(ref scale, channels, ref a, extended);
            ExtendPastLastChannel(ref shift, channels, ref b, extended);

            // head < width <= channels: the unaligned start lies in the first row, at channels 0..head-1.
            nint i = 0;
            for (; i < head && i < length; i++)
            {
                MapElement(ref x, ref y, i, ref m, ref a, ref b, i);
            }

            nuint channel = (nuint)i;
            // The shifted rows (C elements from r C + head) wholly inside the tensor: all of them, or all but the last.
            int wholeRows = (int)(length / channels) - (head == 0 ? 0 : 1);
            if (prefetch && i == head && channels % width == 0)
            {
                ref T xs = ref Unsafe.Add(ref x, head);
                ref T ys = ref Unsafe.Add(ref y, head);
                if (RowStreamsAreClear(in ys, in xs, wholeRows, channels, width * Unsafe.SizeOf<T>()))
                {
                    AffineShiftedRowStreams<TVec, TOps, T>(ref xs, ref ys, wholeRows, channels, ref Unsafe.Add(ref m, head), ref Unsafe.Add(ref a, head), ref Unsafe.Add(ref b, head));
                    i = head + ((nint)wholeRows * channels);
                }
                else if (channels > InterleavedChannels<T>(StreamingTileBytes))
                {
                    AffineShiftedRowTilesStreaming<TVec, TOps, T>(ref xs, ref ys, wholeRows, channels, ref Unsafe.Add(ref m, head), ref Unsafe.Add(ref a, head), ref Unsafe.Add(ref b, head));
                    i = head + ((nint)wholeRows * channels);
                }
            }

            if (prefetch)
            {
                // Two halves of the rest at once: one core reads two streams from memory faster than one.
                nint half = (length - i) / width / 2 * width;
                nint j = i + half;
                nuint channel2 = (nuint)(j % channels);
                for (nint end = j; i < end; i += width, j += width)
                {
                    Prefetch.Ahead(ref x, (nuint)i);
                    Prefetch.Ahead(ref x, (nuint)j);
                    TVec d = TOps.Subtract(TOps.Load(ref x, (nuint)i), TOps.Load(ref m, channel));
                    TVec e = TOps.Subtract(TOps.Load(ref x, (nuint)j), TOps.Load(ref m, channel2));
                    TOps.StoreStreaming(TOps.Add(TOps.Multiply(d, TOps.Load(ref a, channel)), TOps.Load(ref b, channel)), ref y, (nuint)i);
                    TOps.StoreStreaming(TOps.Add(TOps.Multiply(e, TOps.Load(ref a, channel2)), TOps.Load(ref b, channel2)), ref y, (nuint)j);
                    channel += (nuint)width;
                    channel2 += (nuint)width;
                    if (channel >= (nuint)channels)
                    {
                        channel -= (nuint)channels;
                    }

                    if (channel2 >= (nuint)channels)
                    {
                        channel2 -= (nuint)channels;
                    }
                }

                i = j;
                channel = channel2;
            }

            for (; i <= length - width; i += width)
            {
                if (prefetch)
                {
                    Prefetch.Ahead(ref x, (nuint)i);
                }

                TVec d = TOps.Subtract(TOps.Load(ref x, (nuint)i), TOps.Load(ref m, channel));
                TOps.StoreStreaming(TOps.Add(TOps.Multiply(d, TOps.Load(ref a, channel)), TOps.Load(ref b, channel)), ref y, (nuint)i);
                channel += (nuint)width;
                if (channel >= (nuint)channels)
                {
                    channel -= (nuint)channels;
                }
            }

            for (; i < length; i++, channel++)
            {
                MapElement(ref x, ref y, i, ref m, ref a, ref b, (nint)channel);
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
    /// Whether <see cref="AffineShiftedRowStreams{TVec, TOps, T}"/> may walk the shifted rows from <paramref name="x"/> to
    /// <paramref name="y"/> with vectors of <paramref name="vectorBytes"/>: whether no output stream's page offset lies
    /// more than a vector but less than <see cref="CacheLine.AliasBytes"/> above any input stream's. The walk loads the
    /// next vector of every stream before this vector's stores, so a load only ever follows stores to output offsets more
    /// than a vector above its own; those make it wait (4K aliasing). Below, or within a vector above (y 56 bytes above
    /// x, as two large arrays allocated one after the other lie, with 512-bit vectors), is clear. On the Zen 4 machine,
    /// float32 [3136, 2048], the walk with y 128 bytes above x took 1.93 ms against 1.65 ms unpipelined, 184 above 2.44
    /// against 1.87; 56 above 1.64-1.89 ms against 3.12-3.27 ms (and 2.40-2.62 ms for the older walks).
    /// </summary>
    internal static bool RowStreamsAreClear<T>(ref readonly T y, ref readonly T x, int wholeRows, int channels, int vectorBytes)
        where T : unmanaged
    {
        long gapBytes = (long)(wholeRows / AffineRowStreams) * channels * Unsafe.SizeOf<T>();
        int between = CacheLine.PageOffset(in y) - CacheLine.PageOffset(in x);
        for (int k = 1 - AffineRowStreams; k < AffineRowStreams; k++)
        {
            int d = between + (int)(k * gapBytes % CacheLine.PageBytes);
            if (CacheLine.IsJustAbove(d) && (d & (CacheLine.PageBytes - 1)) > vectorBytes)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// The whole shifted rows of <see cref="AffineRowsStreaming{TVec, TOps, T}"/> (row <c>r</c> taken as the C elements
    /// from <c>r C + head</c>; <paramref name="x"/>, <paramref name="y"/> and the extended coefficient copies are given
    /// from element <c>head</c> on, so every row starts aligned) as <see cref="AffineRowStreams"/> streams of consecutive
    /// rows side by side: row <c>r</c> of each stream at once, a vector of channels at a time, so that each load of the
    /// three coefficient vectors serves that many rows, and the next vector of every stream is loaded before this vector's
    /// stores (see <see cref="RowStreamsAreClear{T}"/>). No software prefetch: the hardware follows this many sequential
    /// streams. The rows left over after the streams' (fewer than their count) go one at a time. Requires C a multiple of
    /// the width. Every element gets the flat walk's three operations with its own channel's coefficients: the same bits.
    /// </summary>
    /// <remarks>
    /// The older walks, which tensors not <see cref="RowStreamsAreClear{T}"/> still take: rows wider than 8 KiB a tile of
    /// 8 KiB of channels at a time down all the rows in two halves, narrower ones the flat walk in two halves, all
    /// prefetched 8 KiB ahead. On the Zen 4 machine (32 KiB L1), the kernel alone from memory with x at page offset 0 and
    /// y at 1024, fastest of 15 rounds against a copy, this walk against the older ones: double [3136, 2048] 0.61x
    /// against 1.03x, float32 0.53x against 1.03x; double [1568, 4096] 0.54x against 0.93x; float32 [6272, 1024] 0.60x
    /// against 0.76x; double [3136, 1024] 0.56x against 0.76x; float32 [12544, 512] 0.52x against 0.61x; double
    /// [12544, 256] 0.57x against 0.62x; float32 [100352, 64] 0.59x against 0.66x, double 0.54x against 0.67x. Plain
    /// loops showed why (double [3136, 2048]): two halves of whole rows took 0.51-0.67x with the coefficients held in
    /// registers and 0.73-1.04x with them loaded, eight streams with them loaded 0.55-0.62x. Each stream's next row
    /// prefetched took 0.71-0.74x on [3136, 2048]; two or four streams were slower than eight on rows of 8 KiB and more
    /// (double [1568, 4096] 0.90x and 0.73x) and within 0.08x of it on narrower ones. With x 8 bytes past a line and y
    /// 2 KiB from it: [3136, 2048] 0.55x against 0.99x (float32) and 1.02x (double). Those figures are the unpipelined
    /// walk's (forty-fifth session). Loading ahead (forty-sixth) measured the same far from x; with y 56 bytes above x,
    /// where the unpipelined walk took 1.05-1.23x a copy and the older walks 0.81-0.95x, it took 0.59x (float32
    /// [3136, 2048]; double 0.61x, [3136, 1024] 0.54x, float32 [12544, 512] 0.56x, [100352, 64] 0.48x, double 0.54x).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AffineShiftedRowStreams<TVec, TOps, T>(
        ref T x, ref T y, int rows, int channels, ref T center, ref T scale, ref T shift)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint width = (nuint)TOps.Count;
        int perStream = rows / AffineRowStreams;
        nuint stride = (nuint)channels;
        nuint gap = (nuint)perStream * stride;
        if (perStream > 0)
        {
            // Each stream is one stretch of gap elements; the eight start gap apart. The next vector of all eight is
            // loaded before this one's eight stores, so no load comes after a store to its own page offset or one just
            // below it (RowStreamsAreClear).
            nuint g1 = gap, g2 = 2 * gap, g3 = 3 * gap, g4 = 4 * gap, g5 = 5 * gap, g6 = 6 * gap, g7 = 7 * gap;
            TVec v0 = TOps.Load(ref x, 0), v1 = TOps.Load(ref x, g1), v2 = TOps.Load(ref x, g2), v3 = TOps.Load(ref x, g3);
            TVec v4 = TOps.Load(ref x, g4), v5 = TOps.Load(ref x, g5), v6 = TOps.Load(ref x, g6), v7 = TOps.Load(ref x, g7);
            nuint c = 0;
            nuint e = 0;
            TVec m, a, b;
            for (nuint last = gap - width; e < last; e += width)
            {
                m = TOps.Load(ref center, c);
                a = TOps.Load(ref scale, c);
                b = TOps.Load(ref shift, c);
                TVec w0 = MapVector<TVec, TOps, T>(v0, m, a, b), w1 = MapVector<TVec, TOps, T>(v1, m, a, b);
                TVec w2 = MapVector<TVec, TOps, T>(v2, m, a, b), w3 = MapVector<TVec, TOps, T>(v3, m, a, b);
                TVec w4 = MapVector<TVec, TOps, T>(v4, m, a, b), w5 = MapVector<TVec, TOps, T>(v5, m, a, b);
                TVec w6 = MapVector<TVec, TOps, T>(v6, m, a, b), w7 = MapVector<TVec, TOps, T>(v7, m, a, b);
                nuint n = e + width;
                v0 = TOps.Load(ref x, n);
                v1 = TOps.Load(ref x, n + g1);
                v2 = TOps.Load(ref x, n + g2);
                v3 = TOps.Load(ref x, n + g3);
                v4 = TOps.Load(ref x, n + g4);
                v5 = TOps.Load(ref x, n + g5);
                v6 = TOps.Load(ref x, n + g6);
                v7 = TOps.Load(ref x, n + g7);
                TOps.StoreStreaming(w0, ref y, e);
                TOps.StoreStreaming(w1, ref y, e + g1);
                TOps.StoreStreaming(w2, ref y, e + g2);
                TOps.StoreStreaming(w3, ref y, e + g3);
                TOps.StoreStreaming(w4, ref y, e + g4);
                TOps.StoreStreaming(w5, ref y, e + g5);
                TOps.StoreStreaming(w6, ref y, e + g6);
                TOps.StoreStreaming(w7, ref y, e + g7);
                c += width;
                if (c == stride)
                {
                    c = 0;
                }
            }

            m = TOps.Load(ref center, c);
            a = TOps.Load(ref scale, c);
            b = TOps.Load(ref shift, c);
            TOps.StoreStreaming(MapVector<TVec, TOps, T>(v0, m, a, b), ref y, e);
            TOps.StoreStreaming(MapVector<TVec, TOps, T>(v1, m, a, b), ref y, e + g1);
            TOps.StoreStreaming(MapVector<TVec, TOps, T>(v2, m, a, b), ref y, e + g2);
            TOps.StoreStreaming(MapVector<TVec, TOps, T>(v3, m, a, b), ref y, e + g3);
            TOps.StoreStreaming(MapVector<TVec, TOps, T>(v4, m, a, b), ref y, e + g4);
            TOps.StoreStreaming(MapVector<TVec, TOps, T>(v5, m, a, b), ref y, e + g5);
            TOps.StoreStreaming(MapVector<TVec, TOps, T>(v6, m, a, b), ref y, e + g6);
            TOps.StoreStreaming(MapVector<TVec, TOps, T>(v7, m, a, b), ref y, e + g7);
        }

        for (int r = AffineRowStreams * perStream; r < rows; r++)
        {
            AffineShiftedRowStretchStreaming<TVec, TOps, T>(ref x, ref y, (nuint)r * stride, 0, stride, ref center, ref scale, ref shift);
        }
    }

    /// <summary>The vector map <c>(x - center) * scale + shift</c>, the scalar map's operations in its order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TVec MapVector<TVec, TOps, T>(TVec x, TVec center, TVec scale, TVec shift)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        TOps.Add(TOps.Multiply(TOps.Subtract(x, center), scale), shift);

    /// <summary>
    /// Channels <c>[c0, c1)</c> of the shifted row at element <paramref name="o"/>, one vector at a time with streaming
    /// stores (aligned: the rows are), for the rows the row walks leave over.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffineShiftedRowStretchStreaming<TVec, TOps, T>(
        ref T x, ref T y, nuint o, nuint c0, nuint c1, ref T center, ref T scale, ref T shift)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        for (nuint c = c0; c < c1; c += (nuint)TOps.Count)
        {
            TVec d = TOps.Subtract(TOps.Load(ref x, o + c), TOps.Load(ref center, c));
            TOps.StoreStreaming(TOps.Add(TOps.Multiply(d, TOps.Load(ref scale, c)), TOps.Load(ref shift, c)), ref y, o + c);
        }
    }

    /// <summary>
    /// The whole shifted rows of <see cref="AffineRowsStreaming{TVec, TOps, T}"/>, given as for
    /// <see cref="AffineShiftedRowStreams{TVec, TOps, T}"/>, walked a tile of channels at a time down the rows, each row's
    /// tile prefetched one row ahead. Requires C a multiple of the width. The tiles are of equal size, a whole number of
    /// vectors, at most <see cref="StreamingTileBytes"/> wide, so the three copies of a tile's coefficients take at most
    /// half the 48 KiB L1 beside the input stream.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AffineShiftedRowTilesStreaming<TVec, TOps, T>(
        ref T x, ref T y, int rows, int channels, ref T center, ref T scale, ref T shift)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        int tiles = (channels + InterleavedChannels<T>(StreamingTileBytes) - 1) / InterleavedChannels<T>(StreamingTileBytes);
        int tile = ((channels / width) + tiles - 1) / tiles * width;
        nuint stride = (nuint)channels;
        // The rows' two halves at once (the second half takes the odd row): two streams read faster than one.
        int half = rows / 2;
        nuint second = (nuint)(rows - half) * stride;
        for (int c0 = 0; c0 < channels; c0 += tile)
        {
            nuint c1 = (nuint)Math.Min(c0 + tile, channels);
            for (int r = 0; r < half; r++)
            {
                nuint o = (nuint)r * stride;
                nuint p = o + second;
                for (nuint c = (nuint)c0; c < c1; c += (nuint)width)
                {
                    Prefetch.At(ref x, o + stride + c);
                    Prefetch.At(ref x, p + stride + c);
                    TVec m = TOps.Load(ref center, c), a = TOps.Load(ref scale, c), b = TOps.Load(ref shift, c);
                    TOps.StoreStreaming(MapVector<TVec, TOps, T>(TOps.Load(ref x, o + c), m, a, b), ref y, o + c);
                    TOps.StoreStreaming(MapVector<TVec, TOps, T>(TOps.Load(ref x, p + c), m, a, b), ref y, p + c);
                }
            }

            // The odd row: the last of the first half's rows, before the second half's first.
            if ((rows & 1) != 0)
            {
                AffineShiftedRowStretchStreaming<TVec, TOps, T>(ref x, ref y, (nuint)half * stride, (nuint)c0, c1, ref center, ref scale, ref shift);
            }
        }
    }

    /// <summary>
    /// <c>extended[j] = coefficients[j mod C]</c> for <c>j &lt; length</c> (at most <c>2 C</c>): per-channel coefficients
    /// continued past the last channel, for the streaming passes whose aligned vectors straddle two channels-last rows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ExtendPastLastChannel<T>(ref T coefficients, int channels, ref T extended, int length)
    {
        for (int j = 0; j < length; j++)
        {
            Unsafe.Add(ref extended, j) = Unsafe.Add(ref coefficients, j < channels ? j : j - channels);
        }
    }

    /// <summary>
    /// One channels-first run of the affine map with streaming stores: its x and y, its channel's coefficients, and
    /// <see cref="Head"/>, the elements before its first store aligned for vectors of <c>lanes</c> (y is pinned).
    /// </summary>
    private readonly unsafe ref struct AffineStreamRun<T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public readonly ref T X;
        public readonly ref T Y;
        public readonly T Center, Scale, Shift;
        public readonly int Head;

        /// <summary>Run <paramref name="run"/> of a <c>[outer, C, inner]</c> layout: channel run mod C, at run * inner.</summary>
        public AffineStreamRun(ref T x, ref T y, ref T center, ref T scale, ref T shift, int run, int channels, int inner, int lanes)
        {
            int c = run % channels;
            nint start = (nint)run * inner;
            X = ref Unsafe.Add(ref x, start);
            Y = ref Unsafe.Add(ref y, start);
            Center = Unsafe.Add(ref center, c);
            Scale = Unsafe.Add(ref scale, c);
            Shift = Unsafe.Add(ref shift, c);
            Head = Math.Min(inner, NonTemporal.ElementsToAlignment<T>(Unsafe.AsPointer(ref Y), lanes * sizeof(T)));
        }

        /// <summary>Maps element <paramref name="i"/> in T: <c>(x - center) * scale + shift</c>, the vector map's operations.</summary>
        public void MapAt(int i) => Unsafe.Add(ref Y, i) = ((Unsafe.Add(ref X, i) - Center) * Scale) + Shift;

        /// <summary>Maps the vector at element <paramref name="i"/> with the coefficients broadcast by the caller, streamed.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void StreamAt<TVec, TOps>(int i, TVec center, TVec scale, TVec shift)
            where TVec : struct
            where TOps : IVectorOps<TVec, T> =>
            TOps.StoreStreaming(MapVector<TVec, TOps, T>(TOps.Load(ref X, (nuint)i), center, scale, shift), ref Y, (nuint)i);
    }

    /// <summary>
    /// Two runs of the same length (<paramref name="count"/>) with streaming stores, in one loop, both prefetched; each
    /// element gets the operations it gets alone (<see cref="AffineRunStreaming"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AffineTwoRunsStreaming<TVec, TOps, T>(AffineStreamRun<T> a, AffineStreamRun<T> b, int count)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        int i = 0, j = 0;
        for (; i < a.Head; i++)
        {
            a.MapAt(i);
        }

        for (; j < b.Head; j++)
        {
            b.MapAt(j);
        }

        TVec ma = TOps.Broadcast(a.Center), sa = TOps.Broadcast(a.Scale), ha = TOps.Broadcast(a.Shift);
        TVec mb = TOps.Broadcast(b.Center), sb = TOps.Broadcast(b.Scale), hb = TOps.Broadcast(b.Shift);
        for (; i <= count - width && j <= count - width; i += width, j += width)
        {
            Prefetch.Ahead(ref a.X, (nuint)i);
            Prefetch.Ahead(ref b.X, (nuint)j);
            a.StreamAt<TVec, TOps>(i, ma, sa, ha);
            b.StreamAt<TVec, TOps>(j, mb, sb, hb);
        }

        for (; i <= count - width; i += width)
        {
            a.StreamAt<TVec, TOps>(i, ma, sa, ha);
        }

        for (; j <= count - width; j += width)
        {
            b.StreamAt<TVec, TOps>(j, mb, sb, hb);
        }

        for (; i < count; i++)
        {
            a.MapAt(i);
        }

        for (; j < count; j++)
        {
            b.MapAt(j);
        }
    }

    /// <summary>One run of a single channel with streaming stores, aligned from its head on.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffineRunStreaming<TVec, TOps, T>(AffineStreamRun<T> run, int count, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        int i = 0;
        for (; i < run.Head; i++)
        {
            run.MapAt(i);
        }

        TVec m = TOps.Broadcast(run.Center), a = TOps.Broadcast(run.Scale), b = TOps.Broadcast(run.Shift);
        for (; i <= count - width; i += width)
        {
            if (prefetch)
            {
                Prefetch.Ahead(ref run.X, (nuint)i);
            }

            run.StreamAt<TVec, TOps>(i, m, a, b);
        }

        for (; i < count; i++)
        {
            run.MapAt(i);
        }
    }

    /// <summary>
    /// Channels-last rows of at most four vectors (e.g. C = 64 floats with AVX-512): all coefficients stay in registers
    /// for the whole loop. A row's K = ceil(C / width) vectors start at 0, width, 2 width, ... with the last one moved back
    /// to end at C (overlapping); all K are loaded before any is stored, so in place stays exact. Inlined: a small
    /// inference (<see cref="SmallAffine{T}"/>) is a few vectors, and the call's frame cost it as much as they did (float32 [8, 16] 0.91-0.94 of its time inlined,
    /// float64 0.92-0.96; the large shapes' inference within the noise). With <paramref name="down"/> the rows go from
    /// the last (<see cref="CacheLine.WalkDown"/>, since the forty-third session): on the Zen 4 machine, arrays allocated
    /// one after the other, the two walks alternating in one process, float32 [16384,16] took 1.22-1.25x a copy against
    /// 1.61-1.64x and [8192,48] 1.09-1.12x against 1.29x; [4096,64] keeps the upward walk (1.19x either way).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffineNarrowRows<TVec, TOps, T>(ref T x, ref T y, int rows, int channels, ref T center, ref T scale, ref T shift, bool down = false)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        // Each case loads only the coefficient vectors its rows use: a row of one vector (float32 [8,16] at 512 bits)
        // needs three loads, not twelve.
        int width = TOps.Count;
        int chunks = (channels + width - 1) / width;
        nuint stride = down ? (nuint)(-(nint)channels) : (nuint)channels;
        nuint o = down ? (nuint)(rows - 1) * (nuint)channels : 0;
        TVec m0 = TOps.Load(ref center, 0), a0 = TOps.Load(ref scale, 0), b0 = TOps.Load(ref shift, 0);
        if (chunks == 1)
        {
            for (int r = 0; r < rows; r++, o += stride)
            {
                TOps.Store(MapVector<TVec, TOps, T>(TOps.Load(ref x, o), m0, a0, b0), ref y, o);
            }

            return;
        }

        nuint c1 = (nuint)Math.Min(width, channels - width);
        TVec m1 = TOps.Load(ref center, c1), a1 = TOps.Load(ref scale, c1), b1 = TOps.Load(ref shift, c1);
        if (chunks == 2)
        {
            for (int r = 0; r < rows; r++, o += stride)
            {
                TVec x0 = TOps.Load(ref x, o);
                TVec x1 = TOps.Load(ref x, o + c1);
                TOps.Store(MapVector<TVec, TOps, T>(x0, m0, a0, b0), ref y, o);
                TOps.Store(MapVector<TVec, TOps, T>(x1, m1, a1, b1), ref y, o + c1);
            }

            return;
        }

        nuint c2 = (nuint)Math.Min(2 * width, channels - width);
        TVec m2 = TOps.Load(ref center, c2), a2 = TOps.Load(ref scale, c2), b2 = TOps.Load(ref shift, c2);
        if (chunks == 3)
        {
            for (int r = 0; r < rows; r++, o += stride)
            {
                TVec x0 = TOps.Load(ref x, o);
                TVec x1 = TOps.Load(ref x, o + c1);
                TVec x2 = TOps.Load(ref x, o + c2);
                TOps.Store(MapVector<TVec, TOps, T>(x0, m0, a0, b0), ref y, o);
                TOps.Store(MapVector<TVec, TOps, T>(x1, m1, a1, b1), ref y, o + c1);
                TOps.Store(MapVector<TVec, TOps, T>(x2, m2, a2, b2), ref y, o + c2);
            }

            return;
        }

        nuint c3 = (nuint)Math.Min(3 * width, channels - width);
        TVec m3 = TOps.Load(ref center, c3), a3 = TOps.Load(ref scale, c3), b3 = TOps.Load(ref shift, c3);
        for (int r = 0; r < rows; r++, o += stride)
        {
            TVec x0 = TOps.Load(ref x, o);
            TVec x1 = TOps.Load(ref x, o + c1);
            TVec x2 = TOps.Load(ref x, o + c2);
            TVec x3 = TOps.Load(ref x, o + c3);
            TOps.Store(MapVector<TVec, TOps, T>(x0, m0, a0, b0), ref y, o);
            TOps.Store(MapVector<TVec, TOps, T>(x1, m1, a1, b1), ref y, o + c1);
            TOps.Store(MapVector<TVec, TOps, T>(x2, m2, a2, b2), ref y, o + c2);
            TOps.Store(MapVector<TVec, TOps, T>(x3, m3, a3, b3), ref y, o + c3);
        }
    }

    /// <summary>
    /// Channels-last rows in cache, two at a time: each chunk's coefficients are loaded once for two rows (measured
    /// faster than one row, and than four, whose eight streams 4 KiB apart collide in the load/store unit). Each row's
    /// overlapping last vector is read before anything of the pair is stored, so in place stays exact. From memory
    /// (<paramref name="prefetch"/>) rows go one at a time, prefetched: two row streams at once defeat the prefetcher.
    /// Rows in cache wider than <see cref="AffineUntiledRowBytes"/> take <see cref="AffineRowTiles{TVec, TOps, T}"/>.
    /// Requires channels &gt;= width.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AffineRows<TVec, TOps, T>(ref T x, ref T y, int rows, int channels, ref T center, ref T scale, ref T shift, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        if (!prefetch && rows >= 2 && channels > InterleavedChannels<T>(AffineUntiledRowBytes))
        {
            AffineRowTiles<TVec, TOps, T>(ref x, ref y, rows, channels, ref center, ref scale, ref shift);
            return;
        }

        nuint stride = (nuint)channels;
        nuint last = (nuint)(channels - width);
        bool tail = channels % width != 0;
        int vectorEnd = channels - (channels % width);
        int r = 0;
        for (; !prefetch && r <= rows - 2; r += 2)
        {
            nuint o0 = (nuint)r * stride;
            nuint o1 = o0 + stride;
            TVec t0 = default, t1 = default;
            if (tail)
            {
                t0 = TOps.Load(ref x, o0 + last);
                t1 = TOps.Load(ref x, o1 + last);
            }

            AffinePair<TVec, TOps, T>(ref x, ref y, o0, o1, 0, (nuint)vectorEnd, ref center, ref scale, ref shift);

            if (tail)
            {
                TVec m = TOps.Load(ref center, last);
                TVec a = TOps.Load(ref scale, last);
                TVec b = TOps.Load(ref shift, last);
                TOps.Store(MapVector<TVec, TOps, T>(t0, m, a, b), ref y, o0 + last);
                TOps.Store(MapVector<TVec, TOps, T>(t1, m, a, b), ref y, o1 + last);
            }
        }

        for (; r < rows; r++)
        {
            nint rowStart = (nint)r * channels;
            AffineRun<TVec, TOps, T>(ref Unsafe.Add(ref x, rowStart), ref Unsafe.Add(ref y, rowStart), channels, ref center, ref scale, ref shift, prefetch);
        }
    }

    /// <summary>
    /// <see cref="AffineRows{TVec, TOps, T}"/> in cache for rows wider than <see cref="AffineUntiledRowBytes"/> (rows that
    /// do not share a phase: C not a multiple of the width, or fewer than <see cref="RowPhase.MinRows"/> rows): a tile of
    /// <see cref="WideTileBytes"/> of channels at a time through blocks of <see cref="TiledBlockRows"/> rows, two rows per
    /// load of the coefficients, as <see cref="AffineInterleavedTiles{TVec, TOps, T}"/> does for rows that share one. When
    /// C is not a multiple of the width, each row's overlapping last vector is computed for the whole block before its
    /// first store and stored after its last, so in place stays exact.
    /// </summary>
    /// <remarks>
    /// The layer's inference with whole and tiled rows alternating in one process (fifteenth session, fastest of 15
    /// rounds, two rounds): float32 [256,3000] 1.97-2.26x a copy against 1.35-1.38x, [256,2050] 1.49-1.58x against
    /// 1.25-1.36x, [128,4100] 2.34-2.53x against 1.27-1.53x, double [256,1025] 1.57-1.68x against 1.28-1.33x; the
    /// training forward 0.2-0.6x lower on the same shapes.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AffineRowTiles<TVec, TOps, T>(ref T x, ref T y, int rows, int channels, ref T center, ref T scale, ref T shift)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint w = (nuint)TOps.Count;
        nuint stride = (nuint)channels;
        nuint last = stride - w;
        bool tail = channels % TOps.Count != 0;
        nuint vectorEnd = stride - (stride % w);
        nuint tile = (nuint)TileChannels<T>();
        Span<T> tails = stackalloc T[tail ? TiledBlockRows * TOps.Count : 0];
        ref T tv = ref MemoryMarshal.GetReference(tails);
        TVec mt = TOps.Load(ref center, last), at = TOps.Load(ref scale, last), bt = TOps.Load(ref shift, last);
        for (int r0 = 0; r0 < rows; r0 += TiledBlockRows)
        {
            int r1 = Math.Min(rows, r0 + TiledBlockRows);
            for (int r = r0; tail && r < r1; r++)
            {
                TVec v = TOps.Load(ref x, ((nuint)r * stride) + last);
                TOps.Store(MapVector<TVec, TOps, T>(v, mt, at, bt), ref tv, (nuint)(r - r0) * w);
            }

            for (nuint c0 = 0; c0 < vectorEnd; c0 += tile)
            {
                nuint c1 = Math.Min(vectorEnd, c0 + tile);
                int r = r0;
                for (; r <= r1 - 2; r += 2)
                {
                    nuint o0 = (nuint)r * stride;
                    AffinePair<TVec, TOps, T>(ref x, ref y, o0, o0 + stride, c0, c1, ref center, ref scale, ref shift);
                }

                if (r < r1)
                {
                    nuint o0 = (nuint)r * stride;
                    for (nuint c = c0; c < c1; c += w)
                    {
                        TVec d = TOps.Subtract(TOps.Load(ref x, o0 + c), TOps.Load(ref center, c));
                        TOps.Store(TOps.Add(TOps.Multiply(d, TOps.Load(ref scale, c)), TOps.Load(ref shift, c)), ref y, o0 + c);
                    }
                }
            }

            for (int r = r0; tail && r < r1; r++)
            {
                TOps.Store(TOps.Load(ref tv, (nuint)(r - r0) * w), ref y, ((nuint)r * stride) + last);
            }
        }
    }

    /// <summary>Two rows (at <paramref name="o0"/> and <paramref name="o1"/>) over the vectors of channels <c>[c0, c1)</c>, one load of each coefficient vector for both.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffinePair<TVec, TOps, T>(ref T x, ref T y, nuint o0, nuint o1, nuint c0, nuint c1, ref T center, ref T scale, ref T shift)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        for (nuint c = c0; c < c1; c += (nuint)TOps.Count)
        {
            TVec m = TOps.Load(ref center, c);
            TVec a = TOps.Load(ref scale, c);
            TVec b = TOps.Load(ref shift, c);
            TOps.Store(MapVector<TVec, TOps, T>(TOps.Load(ref x, o0 + c), m, a, b), ref y, o0 + c);
            TOps.Store(MapVector<TVec, TOps, T>(TOps.Load(ref x, o1 + c), m, a, b), ref y, o1 + c);
        }
    }

    /// <summary>One row of a channels-last layout: the coefficients vary along the run. Requires count &gt;= width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffineRun<TVec, TOps, T>(ref T x, ref T y, int count, ref T center, ref T scale, ref T shift, bool prefetch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        nuint last = (nuint)(count - width);

        // Read the overlapping last vector before any store, so that y == x (in place) stays exact.
        TVec lastX = TOps.Load(ref x, last);
        nuint i = 0;
        for (; i <= last; i += (nuint)width)
        {
            if (prefetch)
            {
                Prefetch.Ahead(ref x, i);
                Prefetch.Ahead(ref y, i);
            }

            TVec d = TOps.Subtract(TOps.Load(ref x, i), TOps.Load(ref center, i));
            TOps.Store(TOps.Add(TOps.Multiply(d, TOps.Load(ref scale, i)), TOps.Load(ref shift, i)), ref y, i);
        }

        if (i < (nuint)count)
        {
            TVec d = TOps.Subtract(lastX, TOps.Load(ref center, last));
            TOps.Store(TOps.Add(TOps.Multiply(d, TOps.Load(ref scale, last)), TOps.Load(ref shift, last)), ref y, last);
        }
    }

    /// <summary>One contiguous run of a single channel: the coefficients are constant. Requires count &gt;= width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffineRun<TVec, TOps, T>(ref T x, ref T y, int count, TVec center, TVec scale, TVec shift)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        nuint last = (nuint)(count - width);
        TVec lastY = MapVector<TVec, TOps, T>(TOps.Load(ref x, last), center, scale, shift);
        nuint i = 0;
        for (; i <= last; i += (nuint)width)
        {
            TOps.Store(MapVector<TVec, TOps, T>(TOps.Load(ref x, i), center, scale, shift), ref y, i);
        }

        if (i < (nuint)count)
        {
            TOps.Store(lastY, ref y, last);
        }
    }

    /// <summary>
    /// <see cref="AffineRun{TVec, TOps, T}(ref T, ref T, int, TVec, TVec, TVec)"/> from the last whole vector to the
    /// first (<see cref="CacheLine.WalkDown"/>); the overlapping last vector, computed before any store, is stored last.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffineRunDown<TVec, TOps, T>(ref T x, ref T y, int count, TVec center, TVec scale, TVec shift)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        nuint w = (nuint)TOps.Count;
        nuint last = (nuint)count - w;
        TVec lastY = MapVector<TVec, TOps, T>(TOps.Load(ref x, last), center, scale, shift);
        nuint vectorEnd = (nuint)count - ((nuint)count % w);
        for (nuint i = vectorEnd; i != 0;)
        {
            i -= w;
            TOps.Store(MapVector<TVec, TOps, T>(TOps.Load(ref x, i), center, scale, shift), ref y, i);
        }

        if (vectorEnd < (nuint)count)
        {
            TOps.Store(lastY, ref y, last);
        }
    }

    /// <summary>
    /// Folds statistics and weights into the affine coefficients, in double precision then rounded once:
    /// <c>center = mean</c> rounded to T, <c>scale = gamma * (1 / sqrt(variance + epsilon))</c>, and
    /// <c>shift = beta - (mean - center) * scale</c>, which carries the part of the mean that rounding dropped.
    /// An empty <paramref name="gamma"/> means 1 (scale=false), an empty <paramref name="beta"/> means 0 (center=false).
    /// </summary>
    public static void FoldCoefficients<TStat, TWeight, T>(
        ReadOnlySpan<TStat> mean, ReadOnlySpan<TStat> variance, ReadOnlySpan<TWeight> gamma, ReadOnlySpan<TWeight> beta, double epsilon,
        Span<T> center, Span<T> scale, Span<T> shift)
        where TStat : unmanaged, INumberBase<TStat>
        where TWeight : unmanaged, INumberBase<TWeight>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var loop = new FoldLoop<TStat, TWeight, T>(mean, variance, gamma, beta, epsilon, center, scale, shift);
        ChannelLoop.Run(ref loop);
    }

    /// <summary>The loop of <see cref="FoldCoefficients{TStat, TWeight, T}"/>.</summary>
    private readonly ref struct FoldLoop<TStat, TWeight, T>(
        ReadOnlySpan<TStat> mean, ReadOnlySpan<TStat> variance, ReadOnlySpan<TWeight> gamma, ReadOnlySpan<TWeight> beta, double epsilon,
        Span<T> center, Span<T> scale, Span<T> shift) : IChannelLoop
        where TStat : unmanaged
        where TWeight : unmanaged
        where T : unmanaged
    {
        private readonly ReadOnlySpan<TStat> _mean = mean;
        private readonly ReadOnlySpan<TStat> _variance = variance;
        private readonly ReadOnlySpan<TWeight> _gamma = gamma;
        private readonly ReadOnlySpan<TWeight> _beta = beta;
        private readonly Span<T> _center = center;
        private readonly Span<T> _scale = scale;
        private readonly Span<T> _shift = shift;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Run<TVec, TOps>(int start)
            where TVec : struct
            where TOps : IVectorOps<TVec, double>
        {
            ref TStat mu = ref MemoryMarshal.GetReference(_mean);
            ref TStat var = ref MemoryMarshal.GetReference(_variance);
            ref TWeight g = ref MemoryMarshal.GetReference(_gamma);
            ref TWeight bt = ref MemoryMarshal.GetReference(_beta);
            TVec one = TOps.Broadcast(1.0);
            TVec eps = TOps.Broadcast(epsilon);
            int c = start;
            for (; c <= _scale.Length - TOps.Count; c += TOps.Count)
            {
                nuint i = (nuint)c;
                TVec inverse = TOps.Divide(one, TOps.SquareRoot(TOps.Add(TOps.LoadWidened(ref var, i), eps)));
                Fold<TVec, TOps, T>(
                    TOps.LoadWidened(ref mu, i), inverse,
                    _gamma.IsEmpty ? one : TOps.LoadWidened(ref g, i),
                    _beta.IsEmpty ? TOps.Zero : TOps.LoadWidened(ref bt, i),
                    ref MemoryMarshal.GetReference(_center), ref MemoryMarshal.GetReference(_scale), ref MemoryMarshal.GetReference(_shift), i);
            }

            return c;
        }
    }

    /// <summary>
    /// A vector of channels of <see cref="FoldCoefficients{TStat, TWeight, T}"/>, given <c>inverse = 1 / sqrt(v + eps)</c>:
    /// <c>a = g * inverse</c>, <c>center = (T)m</c>, <c>shift = b - (m - center) * a</c>, each stored rounded to T (a
    /// unit gamma multiplies exactly, so scale=false passes one).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Fold<TVec, TOps, T>(TVec m, TVec inverse, TVec g, TVec b, ref T center, ref T scale, ref T shift, nuint c)
        where TVec : struct
        where TOps : IVectorOps<TVec, double>
        where T : unmanaged
    {
        TVec roundedMean = FoldValues<TVec, TOps, T>(m, inverse, g, b, out TVec a, out TVec s);
        TOps.StoreNarrowed(roundedMean, ref center, c);
        TOps.StoreNarrowed(a, ref scale, c);
        TOps.StoreNarrowed(s, ref shift, c);
    }

    /// <summary>
    /// The values <see cref="Fold{TVec, TOps, T}"/> stores, before their rounding to T: returns the T-rounded mean (the
    /// centre), with <paramref name="scale"/> <c>= g * inverse</c> and <paramref name="shift"/> <c>= b - (m - centre) * scale</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TVec FoldValues<TVec, TOps, T>(TVec m, TVec inverse, TVec g, TVec b, out TVec scale, out TVec shift)
        where TVec : struct
        where TOps : IVectorOps<TVec, double>
        where T : unmanaged
    {
        scale = TOps.Multiply(g, inverse);
        TVec roundedMean = TOps.RoundTo<T>(m);
        shift = TOps.Subtract(b, TOps.Multiply(TOps.Subtract(m, roundedMean), scale));
        return roundedMean;
    }
}
