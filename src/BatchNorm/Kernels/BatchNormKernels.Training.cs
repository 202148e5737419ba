using System;
using System.Numerics;
using System.Runtime.InteropServices;

namespace BatchNorm.Kernels;

internal static partial class BatchNormKernels
{
    /// <summary>Keras' <c>backend.epsilon()</c>, added to the count of unmasked positions in masked statistics.</summary>
    public const double MaskCountEpsilon = 1e-7;

    /// <summary>
    /// The training-mode batch statistics, as Keras computes them. Without a mask (<paramref name="weights"/> empty):
    /// <c>mean = sum(x) / n</c> and <c>variance = sum((x - mean)^2) / n</c>. With a mask (Keras 3 <c>_moments</c>):
    /// <c>mean = sum(w x) / (W + 1e-7)</c> and <c>variance = sum(w (x - mean)^2) / (W + 1e-7)</c>, W = sum(w), so a fully
    /// masked batch gives mean = variance = 0. Returns the denominator (n, or W + 1e-7), which the backward pass needs.
    /// </summary>
    public static double BatchStatistics<T>(
        ReadOnlySpan<T> x, ChannelLayout layout, ReadOnlySpan<T> weights, Span<double> mean, Span<double> variance, VectorWidth width, int maxDegree = 1)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (weights.IsEmpty)
        {
            Moments(x, layout, mean, variance, width, maxDegree);
            return layout.CountPerChannel;
        }

        double count = MaskedMoments(x, layout, weights, mean, variance, width);
        double denominator = count + MaskCountEpsilon;
        for (int c = 0; c < mean.Length; c++)
        {
            // The exact mean mu of the unmasked values and M2 = sum(w (x - mu)^2) give Keras' quantities directly:
            // mean_k = mu * W / D and sum(w (x - mean_k)^2) = M2 + W (mu - mean_k)^2.
            double exactMean = mean[c];
            double kerasMean = exactMean * (count / denominator);
            double shift = exactMean - kerasMean;
            variance[c] = (variance[c] + (count * shift * shift)) / denominator;
            mean[c] = kerasMean;
        }

        return denominator;
    }

    /// <summary><c>moving = moving * momentum + batch * (1 - momentum)</c>, in double precision, rounded once.</summary>
    public static void UpdateMovingStatistic<T>(Span<T> moving, ReadOnlySpan<double> batch, double momentum)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        double keep = momentum;
        double take = 1.0 - momentum;
        int c = 0;
        if (ChannelVector.IsHardwareAccelerated && ChannelVector.Supports<T>())
        {
            ref T m = ref MemoryMarshal.GetReference(moving);
            ref double b = ref MemoryMarshal.GetReference(batch);
            var keepVector = new Vector<double>(keep);
            var takeVector = new Vector<double>(take);
            for (; c <= moving.Length - ChannelVector.Count; c += ChannelVector.Count)
            {
                Vector<double> updated = (ChannelVector.Load(ref m, c) * keepVector) + (ChannelVector.Load(ref b, c) * takeVector);
                ChannelVector.Store(updated, ref m, c);
            }
        }

        for (; c < moving.Length; c++)
        {
            moving[c] = T.CreateTruncating((double.CreateTruncating(moving[c]) * keep) + (batch[c] * take));
        }
    }

    /// <summary>
    /// The affine weights a training forward applies after batch renormalization: <c>gamma' = r * gamma</c> and
    /// <c>beta' = d * gamma + beta</c> (r = 1 and d = 0 without renorm). An empty <paramref name="gamma"/> means 1,
    /// an empty <paramref name="beta"/> means 0.
    /// </summary>
    public static void EffectiveWeights<T>(
        ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, ReadOnlySpan<double> r, ReadOnlySpan<double> d, Span<double> effectiveGamma, Span<double> effectiveBeta)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int channels = effectiveGamma.Length;
        int c = 0;
        if (ChannelVector.IsHardwareAccelerated && ChannelVector.Supports<T>())
        {
            ref T gs = ref MemoryMarshal.GetReference(gamma);
            ref T bs = ref MemoryMarshal.GetReference(beta);
            ref double rs = ref MemoryMarshal.GetReference(r);
            ref double ds = ref MemoryMarshal.GetReference(d);
            ref double eg = ref MemoryMarshal.GetReference(effectiveGamma);
            ref double eb = ref MemoryMarshal.GetReference(effectiveBeta);
            for (; c <= channels - ChannelVector.Count; c += ChannelVector.Count)
            {
                Vector<double> g = gamma.IsEmpty ? Vector<double>.One : ChannelVector.Load(ref gs, c);
                Vector<double> b = beta.IsEmpty ? Vector<double>.Zero : ChannelVector.Load(ref bs, c);
                (ChannelVector.Load(ref rs, c) * g).StoreUnsafe(ref eg, (nuint)c);
                ((ChannelVector.Load(ref ds, c) * g) + b).StoreUnsafe(ref eb, (nuint)c);
            }
        }

        for (; c < channels; c++)
        {
            double g = gamma.IsEmpty ? 1.0 : double.CreateTruncating(gamma[c]);
            double b = beta.IsEmpty ? 0.0 : double.CreateTruncating(beta[c]);
            effectiveGamma[c] = r[c] * g;
            effectiveBeta[c] = (d[c] * g) + b;
        }
    }
}
