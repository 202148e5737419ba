using System;
using System.Numerics;

namespace BatchNorm.Kernels;

internal static partial class BatchNormKernels
{
    /// <summary>
    /// Inference mode's per-channel coefficients: <c>y = gamma * (x - movingMean) / sqrt(movingVariance + epsilon) + beta</c>
    /// folded into <c>y = (x - center) * scale + shift</c> (see <see cref="FoldCoefficients{TStat, TWeight, T}"/>); the
    /// data pass is <see cref="Affine{T}"/>. Reads nothing but its arguments.
    /// </summary>
    public static void InferenceCoefficients<T>(
        ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, ReadOnlySpan<T> movingMean, ReadOnlySpan<T> movingVariance, double epsilon,
        Span<T> center, Span<T> scale, Span<T> shift)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        FoldCoefficients<T, T, T>(movingMean, movingVariance, gamma, beta, epsilon, center, scale, shift);
}
