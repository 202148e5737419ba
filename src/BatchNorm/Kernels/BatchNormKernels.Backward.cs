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
    public static void GradientSums<T>(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, ChannelLayout layout, ReadOnlySpan<T> center,
        Span<double> sumDy, Span<double> sumDyCentered, VectorWidth width)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Debug.Assert(x.Length == layout.Length && dy.Length == layout.Length && center.Length == layout.Channels);
        sumDy.Clear();
        sumDyCentered.Clear();
        ref T xs = ref MemoryMarshal.GetReference(x);
        ref T gs = ref MemoryMarshal.GetReference(dy);
        ref T m = ref MemoryMarshal.GetReference(center);
        if (layout.IsChannelsLast)
        {
            T[] scratch = ArrayPool<T>.Shared.Rent(2 * layout.Channels);
            try
            {
                switch (width)
                {
                    case VectorWidth.Vector512:
                        GradientSumsChannelsLast<Vector512<T>, Vector512Ops<T>, T>(ref xs, ref gs, layout, ref m, sumDy, sumDyCentered, scratch);
                        break;
                    case VectorWidth.Vector256:
                        GradientSumsChannelsLast<Vector256<T>, Vector256Ops<T>, T>(ref xs, ref gs, layout, ref m, sumDy, sumDyCentered, scratch);
                        break;
                    case VectorWidth.Vector128:
                        GradientSumsChannelsLast<Vector128<T>, Vector128Ops<T>, T>(ref xs, ref gs, layout, ref m, sumDy, sumDyCentered, scratch);
                        break;
                    default:
                        GradientSumsChannelsLast<T, ScalarOps<T>, T>(ref xs, ref gs, layout, ref m, sumDy, sumDyCentered, scratch);
                        break;
                }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(scratch);
            }
        }
        else
        {
            switch (width)
            {
                case VectorWidth.Vector512:
                    GradientSumsChannelsFirst<Vector512<T>, Vector512Ops<T>, T>(ref xs, ref gs, layout, ref m, sumDy, sumDyCentered);
                    break;
                case VectorWidth.Vector256:
                    GradientSumsChannelsFirst<Vector256<T>, Vector256Ops<T>, T>(ref xs, ref gs, layout, ref m, sumDy, sumDyCentered);
                    break;
                case VectorWidth.Vector128:
                    GradientSumsChannelsFirst<Vector128<T>, Vector128Ops<T>, T>(ref xs, ref gs, layout, ref m, sumDy, sumDyCentered);
                    break;
                default:
                    GradientSumsChannelsFirst<T, ScalarOps<T>, T>(ref xs, ref gs, layout, ref m, sumDy, sumDyCentered);
                    break;
            }
        }
    }

    private static void GradientSumsChannelsLast<TVec, TOps, T>(
        ref T x, ref T dy, ChannelLayout layout, ref T center, Span<double> sumDy, Span<double> sumDyCentered, Span<T> scratch)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int channels = layout.Channels;
        int width = TOps.Count;
        if (channels < width)
        {
            GradientSumsChannelsLast<T, ScalarOps<T>, T>(ref x, ref dy, layout, ref center, sumDy, sumDyCentered, scratch);
            return;
        }

        ref T s1 = ref MemoryMarshal.GetReference(scratch);
        ref T s2 = ref Unsafe.Add(ref s1, channels);
        int blockRows = Math.Max(MinBlockRows, BlockElements / channels);
        nuint stride = (nuint)channels;
        for (int r0 = 0; r0 < layout.Outer; r0 += blockRows)
        {
            int rows = Math.Min(blockRows, layout.Outer - r0);
            nint start = (nint)r0 * channels;
            ref T xb = ref Unsafe.Add(ref x, start);
            ref T gb = ref Unsafe.Add(ref dy, start);
            for (int c = 0; ; c = Math.Min(c + width, channels - width))
            {
                TVec mc = TOps.Load(ref center, (nuint)c);
                TVec a1 = TOps.Zero;
                TVec a2 = TOps.Zero;
                nuint offset = (nuint)c;
                for (int r = 0; r < rows; r++, offset += stride)
                {
                    TVec g = TOps.Load(ref gb, offset);
                    a1 = TOps.Add(a1, g);
                    a2 = TOps.Add(a2, TOps.Multiply(g, TOps.Subtract(TOps.Load(ref xb, offset), mc)));
                }

                TOps.Store(a1, ref s1, (nuint)c);
                TOps.Store(a2, ref s2, (nuint)c);
                if (c + width >= channels)
                {
                    break;
                }
            }

            for (int c = 0; c < channels; c++)
            {
                sumDy[c] += double.CreateTruncating(Unsafe.Add(ref s1, c));
                sumDyCentered[c] += double.CreateTruncating(Unsafe.Add(ref s2, c));
            }
        }
    }

    private static void GradientSumsChannelsFirst<TVec, TOps, T>(
        ref T x, ref T dy, ChannelLayout layout, ref T center, Span<double> sumDy, Span<double> sumDyCentered)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int inner = layout.Inner;
        int width = TOps.Count;
        for (int o = 0; o < layout.Outer; o++)
        {
            for (int c = 0; c < layout.Channels; c++)
            {
                nint runStart = ((nint)o * layout.Channels + c) * inner;
                ref T xr = ref Unsafe.Add(ref x, runStart);
                ref T gr = ref Unsafe.Add(ref dy, runStart);
                T mScalar = Unsafe.Add(ref center, c);
                TVec mc = TOps.Broadcast(mScalar);
                for (int j0 = 0; j0 < inner; j0 += BlockElements)
                {
                    int count = Math.Min(BlockElements, inner - j0);
                    TVec a1 = TOps.Zero;
                    TVec a2 = TOps.Zero;
                    int j = j0;
                    for (; j <= j0 + count - width; j += width)
                    {
                        TVec g = TOps.Load(ref gr, (nuint)j);
                        a1 = TOps.Add(a1, g);
                        a2 = TOps.Add(a2, TOps.Multiply(g, TOps.Subtract(TOps.Load(ref xr, (nuint)j), mc)));
                    }

                    double d1 = TOps.SumToDouble(a1);
                    double d2 = TOps.SumToDouble(a2);
                    for (; j < j0 + count; j++)
                    {
                        double g = double.CreateTruncating(Unsafe.Add(ref gr, j));
                        d1 += g;
                        d2 += g * double.CreateTruncating(Unsafe.Add(ref xr, j) - mScalar);
                    }

                    sumDy[c] += d1;
                    sumDyCentered[c] += d2;
                }
            }
        }
    }

    /// <summary>
    /// The input gradient: <c>dx = dy * a[c] + w * ((x - center[c]) * p[c] + q[c])</c>, where <c>w</c> is the mask weight of
    /// the position (1 without a mask, 0 where masked out: a masked position does not move the statistics).
    /// <paramref name="weights"/> is empty (no mask) or one 0/1 value per position of the input without its channel axis,
    /// i.e. <c>[Outer, Inner]</c>. <paramref name="dx"/> may be <paramref name="dy"/> (in place).
    /// </summary>
    public static void InputGradient<T>(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dx, ChannelLayout layout, ReadOnlySpan<T> weights,
        ReadOnlySpan<T> center, ReadOnlySpan<T> a, ReadOnlySpan<T> p, ReadOnlySpan<T> q, VectorWidth width)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Debug.Assert(x.Length == layout.Length && dy.Length == layout.Length && dx.Length == layout.Length);
        Debug.Assert(weights.IsEmpty || weights.Length == layout.Outer * layout.Inner);
        var k = new GradientCoefficients<T>(
            ref MemoryMarshal.GetReference(center), ref MemoryMarshal.GetReference(a),
            ref MemoryMarshal.GetReference(p), ref MemoryMarshal.GetReference(q));
        ref T xs = ref MemoryMarshal.GetReference(x);
        ref T gs = ref MemoryMarshal.GetReference(dy);
        ref T ds = ref MemoryMarshal.GetReference(dx);
        switch (width)
        {
            case VectorWidth.Vector512:
                InputGradient<Vector512<T>, Vector512Ops<T>, T>(ref xs, ref gs, ref ds, layout, weights, k);
                break;
            case VectorWidth.Vector256:
                InputGradient<Vector256<T>, Vector256Ops<T>, T>(ref xs, ref gs, ref ds, layout, weights, k);
                break;
            case VectorWidth.Vector128:
                InputGradient<Vector128<T>, Vector128Ops<T>, T>(ref xs, ref gs, ref ds, layout, weights, k);
                break;
            default:
                InputGradient<T, ScalarOps<T>, T>(ref xs, ref gs, ref ds, layout, weights, k);
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

    private static void InputGradient<TVec, TOps, T>(
        ref T x, ref T dy, ref T dx, ChannelLayout layout, ReadOnlySpan<T> weights, GradientCoefficients<T> k)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        int channels = layout.Channels;
        if (layout.IsChannelsLast)
        {
            if (channels < width)
            {
                InputGradient<T, ScalarOps<T>, T>(ref x, ref dy, ref dx, layout, weights, k);
                return;
            }

            for (int r = 0; r < layout.Outer; r++)
            {
                nint start = (nint)r * channels;
                bool statisticsTerm = weights.IsEmpty || weights[r] != T.Zero;
                InputGradientRow<TVec, TOps, T>(
                    ref Unsafe.Add(ref x, start), ref Unsafe.Add(ref dy, start), ref Unsafe.Add(ref dx, start), channels, k, statisticsTerm);
            }
        }
        else
        {
            int inner = layout.Inner;
            if (inner < width)
            {
                InputGradient<T, ScalarOps<T>, T>(ref x, ref dy, ref dx, layout, weights, k);
                return;
            }

            ref T w = ref MemoryMarshal.GetReference(weights);
            for (int o = 0; o < layout.Outer; o++)
            {
                for (int c = 0; c < channels; c++)
                {
                    nint start = ((nint)o * channels + c) * inner;
                    InputGradientRun<TVec, TOps, T>(
                        ref Unsafe.Add(ref x, start), ref Unsafe.Add(ref dy, start), ref Unsafe.Add(ref dx, start), inner,
                        TOps.Broadcast(Unsafe.Add(ref k.Center, c)), TOps.Broadcast(Unsafe.Add(ref k.A, c)),
                        TOps.Broadcast(Unsafe.Add(ref k.P, c)), TOps.Broadcast(Unsafe.Add(ref k.Q, c)),
                        weights.IsEmpty, ref Unsafe.Add(ref w, (nint)o * inner));
                }
            }
        }
    }

    /// <summary>A channels-last row (coefficients vary along it). Requires count &gt;= width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputGradientRow<TVec, TOps, T>(ref T x, ref T dy, ref T dx, int count, GradientCoefficients<T> k, bool statisticsTerm)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        nuint last = (nuint)(count - width);
        TVec lastValue = Row(ref x, ref dy, last, k, statisticsTerm);
        nuint i = 0;
        for (; i <= last; i += (nuint)width)
        {
            TOps.Store(Row(ref x, ref dy, i, k, statisticsTerm), ref dx, i);
        }

        if (i < (nuint)count)
        {
            TOps.Store(lastValue, ref dx, last);
        }

        static TVec Row(ref T x, ref T dy, nuint i, GradientCoefficients<T> k, bool statisticsTerm)
        {
            TVec direct = TOps.Multiply(TOps.Load(ref dy, i), TOps.Load(ref k.A, i));
            if (!statisticsTerm)
            {
                return direct;
            }

            TVec centered = TOps.Subtract(TOps.Load(ref x, i), TOps.Load(ref k.Center, i));
            return TOps.Add(direct, TOps.Add(TOps.Multiply(centered, TOps.Load(ref k.P, i)), TOps.Load(ref k.Q, i)));
        }
    }

    /// <summary>A contiguous run of one channel (coefficients constant), optionally weighted per element. Requires count &gt;= width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputGradientRun<TVec, TOps, T>(
        ref T x, ref T dy, ref T dx, int count, TVec center, TVec a, TVec p, TVec q, bool unweighted, ref T weights)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        nuint last = (nuint)(count - width);
        TVec lastValue = Run(ref x, ref dy, last, center, a, p, q, unweighted, ref weights);
        nuint i = 0;
        for (; i <= last; i += (nuint)width)
        {
            TOps.Store(Run(ref x, ref dy, i, center, a, p, q, unweighted, ref weights), ref dx, i);
        }

        if (i < (nuint)count)
        {
            TOps.Store(lastValue, ref dx, last);
        }

        static TVec Run(ref T x, ref T dy, nuint i, TVec center, TVec a, TVec p, TVec q, bool unweighted, ref T weights)
        {
            TVec statistics = TOps.Add(TOps.Multiply(TOps.Subtract(TOps.Load(ref x, i), center), p), q);
            if (!unweighted)
            {
                statistics = TOps.Multiply(statistics, TOps.Load(ref weights, i));
            }

            return TOps.Add(TOps.Multiply(TOps.Load(ref dy, i), a), statistics);
        }
    }
}
