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
    /// <c>y = gamma * (x - mean) / sqrt(variance + epsilon) + beta</c>: the statistics and weights are folded once
    /// (<see cref="FoldCoefficients{TStat, TWeight, T}"/>) and the data is mapped by <see cref="Affine{T}"/>.
    /// </summary>
    public static void Normalize<TStat, TWeight, T>(
        ReadOnlySpan<T> x, Span<T> y, ChannelLayout layout,
        ReadOnlySpan<TStat> mean, ReadOnlySpan<TStat> variance, ReadOnlySpan<TWeight> gamma, ReadOnlySpan<TWeight> beta,
        double epsilon, VectorWidth width)
        where TStat : unmanaged, INumberBase<TStat>
        where TWeight : unmanaged, INumberBase<TWeight>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int channels = layout.Channels;
        T[]? rented = null;
        Span<T> coefficients = channels <= StackChannels
            ? stackalloc T[3 * StackChannels]
            : (rented = ArrayPool<T>.Shared.Rent(3 * channels));
        try
        {
            Span<T> center = coefficients[..channels];
            Span<T> scale = coefficients.Slice(channels, channels);
            Span<T> shift = coefficients.Slice(2 * channels, channels);
            FoldCoefficients(mean, variance, gamma, beta, epsilon, center, scale, shift);
            Affine(x, y, layout, center, scale, shift, width);
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
    public static void Affine<T>(
        ReadOnlySpan<T> x, Span<T> y, ChannelLayout layout, ReadOnlySpan<T> center, ReadOnlySpan<T> scale, ReadOnlySpan<T> shift, VectorWidth width)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Debug.Assert(x.Length == layout.Length && y.Length == layout.Length);
        Debug.Assert(center.Length == layout.Channels && scale.Length == layout.Channels && shift.Length == layout.Channels);

        ref T src = ref MemoryMarshal.GetReference(x);
        ref T dst = ref MemoryMarshal.GetReference(y);
        ref T m = ref MemoryMarshal.GetReference(center);
        ref T a = ref MemoryMarshal.GetReference(scale);
        ref T b = ref MemoryMarshal.GetReference(shift);
        switch (width)
        {
            case VectorWidth.Vector512:
                Affine<Vector512<T>, Vector512Ops<T>, T>(ref src, ref dst, layout, ref m, ref a, ref b);
                break;
            case VectorWidth.Vector256:
                Affine<Vector256<T>, Vector256Ops<T>, T>(ref src, ref dst, layout, ref m, ref a, ref b);
                break;
            case VectorWidth.Vector128:
                Affine<Vector128<T>, Vector128Ops<T>, T>(ref src, ref dst, layout, ref m, ref a, ref b);
                break;
            default:
                Affine<T, ScalarOps<T>, T>(ref src, ref dst, layout, ref m, ref a, ref b);
                break;
        }
    }

    private static void Affine<TVec, TOps, T>(ref T x, ref T y, ChannelLayout layout, ref T center, ref T scale, ref T shift)
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
                Affine<T, ScalarOps<T>, T>(ref x, ref y, layout, ref center, ref scale, ref shift);
                return;
            }

            for (int r = 0; r < layout.Outer; r++)
            {
                nint rowStart = (nint)r * channels;
                AffineRun<TVec, TOps, T>(ref Unsafe.Add(ref x, rowStart), ref Unsafe.Add(ref y, rowStart), channels, ref center, ref scale, ref shift);
            }
        }
        else
        {
            int inner = layout.Inner;
            if (inner < width)
            {
                Affine<T, ScalarOps<T>, T>(ref x, ref y, layout, ref center, ref scale, ref shift);
                return;
            }

            for (int o = 0; o < layout.Outer; o++)
            {
                for (int c = 0; c < channels; c++)
                {
                    nint runStart = ((nint)o * channels + c) * inner;
                    AffineRun<TVec, TOps, T>(
                        ref Unsafe.Add(ref x, runStart), ref Unsafe.Add(ref y, runStart), inner,
                        TOps.Broadcast(Unsafe.Add(ref center, c)), TOps.Broadcast(Unsafe.Add(ref scale, c)), TOps.Broadcast(Unsafe.Add(ref shift, c)));
                }
            }
        }
    }

    /// <summary>One row of a channels-last layout: the coefficients vary along the run. Requires count &gt;= width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffineRun<TVec, TOps, T>(ref T x, ref T y, int count, ref T center, ref T scale, ref T shift)
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
        TVec lastY = TOps.Add(TOps.Multiply(TOps.Subtract(TOps.Load(ref x, last), center), scale), shift);
        nuint i = 0;
        for (; i <= last; i += (nuint)width)
        {
            TOps.Store(TOps.Add(TOps.Multiply(TOps.Subtract(TOps.Load(ref x, i), center), scale), shift), ref y, i);
        }

        if (i < (nuint)count)
        {
            TOps.Store(lastY, ref y, last);
        }
    }

    /// <summary>
    /// Folds statistics and weights into the affine coefficients, in double precision then rounded once:
    /// <c>center = mean</c> rounded to T, <c>scale = gamma / sqrt(variance + epsilon)</c>, and
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
        for (int c = 0; c < scale.Length; c++)
        {
            double g = gamma.IsEmpty ? 1.0 : double.CreateTruncating(gamma[c]);
            double bt = beta.IsEmpty ? 0.0 : double.CreateTruncating(beta[c]);
            double a = g / Math.Sqrt(double.CreateTruncating(variance[c]) + epsilon);
            double m = double.CreateTruncating(mean[c]);
            T roundedMean = T.CreateTruncating(m);
            center[c] = roundedMean;
            scale[c] = T.CreateTruncating(a);
            shift[c] = T.CreateTruncating(bt - ((m - double.CreateTruncating(roundedMean)) * a));
        }
    }
}
