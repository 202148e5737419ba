using System;
using System.Linq;
using System.Numerics;
using BatchNorm.Kernels;
using BatchNorm.Tests.Reference;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Kernels;

/// <summary>
/// The per-channel steps of every call (moving-statistics update, coefficient fold, effective renorm weights, the final
/// division of the moments) run several channels per instruction when the machine has vectors. Each must give exactly
/// the bits of its documented formula evaluated one channel at a time in double precision and rounded once, written
/// out plainly here, for every channel count around the vector lengths (so every tail is exercised) and on every CI
/// leg: <see cref="ChannelLoop"/> takes 8 doubles at a time with AVX-512, 4 with AVX2, 2 without it, and one channel
/// at a time without intrinsics.
/// </summary>
[Trait("Category", "Kernels")]
public class PerChannelKernelTests
{
    private static readonly int[] ChannelCounts = [.. Enumerable.Range(1, 20), 31, 32, 33, 64, 65, 100];

    [Fact]
    public void Moving_statistic_update_is_the_documented_formula_rounded_once()
    {
        foreach (int channels in ChannelCounts)
        {
            foreach (double momentum in new[] { 0.0, 0.99, 0.5, 1.0 })
            {
                UpdateMatches<float>(channels, momentum);
                UpdateMatches<double>(channels, momentum);
            }
        }
    }

    [Fact]
    public void Coefficient_fold_is_the_documented_formula_rounded_once()
    {
        foreach (int channels in ChannelCounts)
        {
            foreach (bool withGamma in new[] { true, false })
            {
                foreach (bool withBeta in new[] { true, false })
                {
                    FoldMatches<float>(channels, withGamma, withBeta);
                    FoldMatches<double>(channels, withGamma, withBeta);
                }
            }
        }
    }

    /// <summary>
    /// A training forward without renorm runs its per-channel steps in one pass: the moving-statistics update, gamma in
    /// double for the backward pass, and the coefficient fold, each the documented formula rounded once.
    /// </summary>
    [Fact]
    public void Fused_training_steps_are_the_documented_formulas_rounded_once()
    {
        foreach (int channels in ChannelCounts)
        {
            foreach (bool withGamma in new[] { true, false })
            {
                foreach (bool withBeta in new[] { true, false })
                {
                    TrainingStepsMatch<float>(channels, withGamma, withBeta, momentum: 0.99);
                    TrainingStepsMatch<double>(channels, withGamma, withBeta, momentum: 0.5);
                }
            }
        }
    }

    [Fact]
    public void Effective_renorm_weights_and_the_moment_division_are_exact()
    {
        foreach (int channels in ChannelCounts)
        {
            EffectiveWeightsMatch<float>(channels, withGamma: true, withBeta: true);
            EffectiveWeightsMatch<float>(channels, withGamma: false, withBeta: false);
            EffectiveWeightsMatch<double>(channels, withGamma: true, withBeta: false);

            double[] values = KernelTestData.Data(channels, channels, offset: 3, spread: 3);
            double[] expected = values.Select(v => v / 7.0).ToArray();
            BatchNormKernels.DivideAll(values, 7.0);
            values.Should().Equal(expected, $"{channels} channels");
        }
    }

    /// <summary>
    /// A power-of-two divisor is applied as a multiplication by its inverse, which must give the quotient's bits: for
    /// ordinary values, for values whose quotient is subnormal or underflows to zero, and for zeros, infinities and
    /// NaN. The expected values are the plain IEEE divisions.
    /// </summary>
    [Fact]
    public void The_moment_division_by_a_power_of_two_has_the_quotients_bits()
    {
        double[] special = [0.0, -0.0, double.Epsilon, -double.Epsilon, 3 * double.Epsilon, 1e-300, -2.5e-308, 1e-310, double.MaxValue, double.PositiveInfinity, double.NegativeInfinity, double.NaN];
        foreach (double divisor in new[] { 1.0, 2.0, 8.0, 1024.0, 65536.0, 1 << 30, 3.0, 12.0 })
        {
            foreach (int channels in ChannelCounts)
            {
                double[] values = KernelTestData.Data(channels, channels + (int)divisor, offset: 0, spread: 5);
                for (int c = 0; c < channels; c++)
                {
                    values[c] = c % 2 == 0 ? special[(c / 2) % special.Length] : values[c] * Math.Pow(2, -1000 - (c % 80));
                }

                double[] expected = values.Select(v => v / divisor).ToArray();
                BatchNormKernels.DivideAll(values, divisor);
                values.Select(BitConverter.DoubleToInt64Bits).Should().Equal(expected.Select(BitConverter.DoubleToInt64Bits), $"{channels} channels over {divisor}");
            }
        }
    }

    /// <summary>
    /// The merge of the statistics' stripes is Chan et al.'s update applied part after part to a running mean and M2
    /// that start at zero (the code takes those zeros as constants instead of clearing): the same bits, including for a
    /// part whose mean is -0 or infinite or NaN.
    /// </summary>
    [Fact]
    public void Merging_parts_is_chans_update_from_zero_one_channel_at_a_time()
    {
        foreach (int channels in ChannelCounts)
        {
            foreach (int parts in new[] { 1, 2, 5 })
            {
                double[] partMean = KernelTestData.Data(parts * channels, 11 * channels, offset: 40, spread: 30);
                double[] partM2 = KernelTestData.Data(parts * channels, (11 * channels) + 1, offset: 50, spread: 49);
                double[] counts = [.. Enumerable.Range(0, parts).Select(p => 128.0 + (p * 37))];
                partMean[0] = -0.0;
                partMean[channels - 1] = double.PositiveInfinity;
                partMean[(parts * channels) - 1] = double.NaN;
                partM2[channels / 2] = -0.0;

                var expectedMean = new double[channels];
                var expectedM2 = new double[channels];
                for (int c = 0; c < channels; c++)
                {
                    double mean = 0.0, m2 = 0.0, n = 0.0;
                    for (int p = 0; p < parts; p++)
                    {
                        double nb = counts[p];
                        double total = n + nb;
                        double delta = partMean[(p * channels) + c] - mean;
                        mean += delta * (nb / total);
                        m2 += partM2[(p * channels) + c] + (delta * delta * (n * nb / total));
                        n = total;
                    }

                    expectedMean[c] = mean;
                    expectedM2[c] = m2;
                }

                // Outputs full of garbage, as rented arrays are: nothing may be read from them before it is written.
                double[] actualMean = [.. Enumerable.Repeat(double.NaN, channels)];
                double[] actualM2 = [.. Enumerable.Repeat(-7.0, channels)];
                Partition.MergeParts(partMean, partM2, counts, channels, actualMean, actualM2);

                string what = $"{channels} channels, {parts} parts";
                actualMean.Select(BitConverter.DoubleToInt64Bits).Should().Equal(expectedMean.Select(BitConverter.DoubleToInt64Bits), what);
                actualM2.Select(BitConverter.DoubleToInt64Bits).Should().Equal(expectedM2.Select(BitConverter.DoubleToInt64Bits), what);
            }
        }
    }

    /// <summary>
    /// The backward pass's per-channel coefficients, each the documented formula in double precision (products taken
    /// left to right) and rounded once to T where T is stored: after a training call and after an inference call.
    /// </summary>
    [Fact]
    public void Gradient_coefficients_are_the_documented_formulas_rounded_once()
    {
        foreach (int channels in ChannelCounts)
        {
            foreach (bool training in new[] { true, false })
            {
                GradientCoefficientsMatch<float>(channels, training);
                GradientCoefficientsMatch<double>(channels, training);
            }
        }
    }

    private static void GradientCoefficientsMatch<T>(int channels, bool training)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        double[] mean = KernelTestData.Data(channels, 13 * channels, offset: 1e3, spread: 900);
        double[] inverse = KernelTestData.Data(channels, (13 * channels) + 1, offset: 2, spread: 1.5);
        double[] gamma = KernelTestData.Data(channels, (13 * channels) + 2, offset: 0, spread: 3);
        T[] center = Tolerance.FromDouble<T>(mean);
        double[] sumDy = KernelTestData.Data(channels, (13 * channels) + 3, offset: 0, spread: 50);
        double[] sumDyCentered = KernelTestData.Data(channels, (13 * channels) + 4, offset: 0, spread: 70);
        double[] r = training ? KernelTestData.Data(channels, (13 * channels) + 5, offset: 1, spread: 0.5) : [];
        double[] d = training ? KernelTestData.Data(channels, (13 * channels) + 6, offset: 0, spread: 2) : [];
        const double inverseDenominator = 1.0 / 300, maskShift = 0.25;
        gamma[0] = 0.0; // a = +0, so -a is -0: the sign must come out as the formula's.

        var expectedGammaGradient = new double[channels];
        var (expectedA, expectedP, expectedQ) = (new T[channels], new T[channels], new T[channels]);
        for (int c = 0; c < channels; c++)
        {
            double rounding = mean[c] - double.CreateTruncating(center[c]);
            double sumDyXhat = (sumDyCentered[c] - (rounding * sumDy[c])) * inverse[c];
            double a = gamma[c] * inverse[c];
            expectedA[c] = T.CreateTruncating(a);
            if (training)
            {
                expectedGammaGradient[c] = (r[c] * sumDyXhat) + (d[c] * sumDy[c]);
                double p = -a * sumDyXhat * inverseDenominator * inverse[c];
                expectedP[c] = T.CreateTruncating(p);
                expectedQ[c] = T.CreateTruncating((-a * sumDy[c] * inverseDenominator) - (p * (rounding + (mean[c] * maskShift))));
            }
            else
            {
                expectedGammaGradient[c] = sumDyXhat;
            }
        }

        var gammaGradient = new double[channels];
        var betaGradient = new double[channels];
        T[] actualA = new T[channels], actualP = new T[channels], actualQ = new T[channels];
        actualP.AsSpan().Fill(T.One);
        actualQ.AsSpan().Fill(T.One);
        BatchNormKernels.ChannelGradientCoefficients<T>(
            mean, inverse, gamma, center, sumDy, sumDyCentered, r, d, inverseDenominator, maskShift, gammaGradient, betaGradient, actualA, actualP, actualQ);

        string what = $"{typeof(T).Name}, {channels} channels, training {training}";
        gammaGradient.Select(BitConverter.DoubleToInt64Bits).Should().Equal(expectedGammaGradient.Select(BitConverter.DoubleToInt64Bits), what);
        betaGradient.Should().Equal(sumDy, what);
        KernelTestData.Bits(actualA).Should().Equal(KernelTestData.Bits(expectedA), what);
        KernelTestData.Bits(actualP).Should().Equal(KernelTestData.Bits(expectedP), what);
        KernelTestData.Bits(actualQ).Should().Equal(KernelTestData.Bits(expectedQ), what);
    }

    private static void UpdateMatches<T>(int channels, double momentum)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        T[] moving = Tolerance.FromDouble<T>(KernelTestData.Data(channels, channels, offset: 1e3, spread: 900));
        double[] batch = KernelTestData.Data(channels, channels + 1, offset: -2, spread: 1e4);
        var expected = new T[channels];
        for (int c = 0; c < channels; c++)
        {
            expected[c] = T.CreateTruncating((double.CreateTruncating(moving[c]) * momentum) + (batch[c] * (1.0 - momentum)));
        }

        // The update runs inside the fused training steps; here both moving statistics take the same batch values.
        T[] movingVariance = (T[])moving.Clone();
        var (center, scale, shift) = (new T[channels], new T[channels], new T[channels]);
        BatchNormKernels.TrainingChannelSteps<T>(
            batch, batch, [], [], moving, movingVariance, momentum, epsilon: 1e-3, new double[channels], new double[channels], center, scale, shift);

        moving.Should().Equal(expected, $"{typeof(T).Name}, {channels} channels, momentum {momentum}");
        movingVariance.Should().Equal(expected, $"{typeof(T).Name}, {channels} channels, momentum {momentum} (variance)");
    }

    private static void FoldMatches<T>(int channels, bool withGamma, bool withBeta)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        // Means far from zero against the spread, so the rounding carried into the shift matters.
        double[] mean = KernelTestData.Data(channels, 3 * channels, offset: 1e4, spread: 9e3);
        double[] variance = KernelTestData.Data(channels, (3 * channels) + 1, offset: 2, spread: 1.9);
        double[] gamma = withGamma ? KernelTestData.Data(channels, (3 * channels) + 2, offset: 0, spread: 3) : [];
        double[] beta = withBeta ? KernelTestData.Data(channels, (3 * channels) + 3, offset: 0, spread: 5) : [];
        const double epsilon = 1e-3;
        var (center, scale, shift) = (new T[channels], new T[channels], new T[channels]);
        var (expectedCenter, expectedScale, expectedShift) = (new T[channels], new T[channels], new T[channels]);
        for (int c = 0; c < channels; c++)
        {
            double a = (withGamma ? gamma[c] : 1.0) * (1.0 / Math.Sqrt(variance[c] + epsilon));
            expectedCenter[c] = T.CreateTruncating(mean[c]);
            expectedScale[c] = T.CreateTruncating(a);
            expectedShift[c] = T.CreateTruncating((withBeta ? beta[c] : 0.0) - ((mean[c] - double.CreateTruncating(expectedCenter[c])) * a));
        }

        BatchNormKernels.FoldCoefficients<double, double, T>(mean, variance, gamma, beta, epsilon, center, scale, shift);

        string what = $"{typeof(T).Name}, {channels} channels, gamma {withGamma}, beta {withBeta}";
        center.Should().Equal(expectedCenter, what);
        scale.Should().Equal(expectedScale, what);
        shift.Should().Equal(expectedShift, what);

        // The inference fold reads T-typed statistics and weights: the same formula on their exact double values.
        T[] meanT = Tolerance.FromDouble<T>(mean);
        T[] varianceT = Tolerance.FromDouble<T>(variance);
        T[] gammaT = Tolerance.FromDouble<T>(gamma);
        T[] betaT = Tolerance.FromDouble<T>(beta);
        for (int c = 0; c < channels; c++)
        {
            double m = double.CreateTruncating(meanT[c]);
            double a = (withGamma ? double.CreateTruncating(gammaT[c]) : 1.0) * (1.0 / Math.Sqrt(double.CreateTruncating(varianceT[c]) + epsilon));
            expectedCenter[c] = meanT[c];
            expectedScale[c] = T.CreateTruncating(a);
            expectedShift[c] = T.CreateTruncating((withBeta ? double.CreateTruncating(betaT[c]) : 0.0) - ((m - m) * a));
        }

        BatchNormKernels.FoldCoefficients<T, T, T>(meanT, varianceT, gammaT, betaT, epsilon, center, scale, shift);

        center.Should().Equal(expectedCenter, what);
        scale.Should().Equal(expectedScale, what);
        shift.Should().Equal(expectedShift, what);
    }

    private static void TrainingStepsMatch<T>(int channels, bool withGamma, bool withBeta, double momentum)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        double[] mean = KernelTestData.Data(channels, 7 * channels, offset: 1e4, spread: 9e3);
        double[] variance = KernelTestData.Data(channels, (7 * channels) + 1, offset: 2, spread: 1.9);
        T[] gamma = withGamma ? Tolerance.FromDouble<T>(KernelTestData.Data(channels, (7 * channels) + 2, offset: 0, spread: 3)) : [];
        T[] beta = withBeta ? Tolerance.FromDouble<T>(KernelTestData.Data(channels, (7 * channels) + 3, offset: 0, spread: 5)) : [];
        T[] movingMean = Tolerance.FromDouble<T>(KernelTestData.Data(channels, (7 * channels) + 4, offset: 1e3, spread: 900));
        T[] movingVariance = Tolerance.FromDouble<T>(KernelTestData.Data(channels, (7 * channels) + 5, offset: 5, spread: 4));
        const double epsilon = 1e-3;
        var (expectedMean, expectedVariance, expectedGamma) = (new T[channels], new T[channels], new double[channels]);
        var (expectedCenter, expectedScale, expectedShift) = (new T[channels], new T[channels], new T[channels]);
        for (int c = 0; c < channels; c++)
        {
            expectedMean[c] = T.CreateTruncating((double.CreateTruncating(movingMean[c]) * momentum) + (mean[c] * (1.0 - momentum)));
            expectedVariance[c] = T.CreateTruncating((double.CreateTruncating(movingVariance[c]) * momentum) + (variance[c] * (1.0 - momentum)));
            expectedGamma[c] = withGamma ? double.CreateTruncating(gamma[c]) : 1.0;
            double a = expectedGamma[c] * (1.0 / Math.Sqrt(variance[c] + epsilon));
            expectedCenter[c] = T.CreateTruncating(mean[c]);
            expectedScale[c] = T.CreateTruncating(a);
            expectedShift[c] = T.CreateTruncating((withBeta ? double.CreateTruncating(beta[c]) : 0.0) - ((mean[c] - double.CreateTruncating(expectedCenter[c])) * a));
        }

        var effectiveGamma = new double[channels];
        var inverseStddev = new double[channels];
        var (center, scale, shift) = (new T[channels], new T[channels], new T[channels]);
        BatchNormKernels.TrainingChannelSteps<T>(
            mean, variance, gamma, beta, movingMean, movingVariance, momentum, epsilon, effectiveGamma, inverseStddev, center, scale, shift);

        string what = $"{typeof(T).Name}, {channels} channels, gamma {withGamma}, beta {withBeta}";
        movingMean.Should().Equal(expectedMean, what);
        movingVariance.Should().Equal(expectedVariance, what);
        effectiveGamma.Should().Equal(expectedGamma, what);
        inverseStddev.Should().Equal(variance.Select(v => 1.0 / Math.Sqrt(v + epsilon)), what + " (the inverse stddev kept for the backward pass)");
        center.Should().Equal(expectedCenter, what);
        scale.Should().Equal(expectedScale, what);
        shift.Should().Equal(expectedShift, what);
    }

    private static void EffectiveWeightsMatch<T>(int channels, bool withGamma, bool withBeta)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        T[] gamma = withGamma ? Tolerance.FromDouble<T>(KernelTestData.Data(channels, 5 * channels, offset: 0, spread: 3)) : [];
        T[] beta = withBeta ? Tolerance.FromDouble<T>(KernelTestData.Data(channels, (5 * channels) + 1, offset: 0, spread: 3)) : [];
        double[] r = KernelTestData.Data(channels, (5 * channels) + 2, offset: 1, spread: 0.5);
        double[] d = KernelTestData.Data(channels, (5 * channels) + 3, offset: 0, spread: 2);
        var expectedGamma = new double[channels];
        var expectedBeta = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            double g = withGamma ? double.CreateTruncating(gamma[c]) : 1.0;
            expectedGamma[c] = r[c] * g;
            expectedBeta[c] = (d[c] * g) + (withBeta ? double.CreateTruncating(beta[c]) : 0.0);
        }

        var effectiveGamma = new double[channels];
        var effectiveBeta = new double[channels];
        BatchNormKernels.EffectiveWeights<T>(gamma, beta, r, d, effectiveGamma, effectiveBeta);

        effectiveGamma.Should().Equal(expectedGamma, $"{typeof(T).Name}, {channels} channels");
        effectiveBeta.Should().Equal(expectedBeta, $"{typeof(T).Name}, {channels} channels");
    }
}
