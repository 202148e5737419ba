using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using BatchNorm.Tensors;
using BatchNorm.Tests.Reference;
using FluentAssertions;

namespace BatchNorm.Tests.Layer;

/// <summary>Drives the public layer and the float64 reference layer side by side and compares every step.</summary>
internal static class LayerHarness
{
    public sealed record Scenario(int[] Shape, int Axis, bool Center = true, bool Scale = true, double Momentum = 0.99,
        double Epsilon = 1e-3, bool Trainable = true, double Offset = 1, double Spread = 1, int Seed = 1)
    {
        public bool[] Steps { get; init; } = [true, true, true, false];

        public override string ToString() =>
            $"shape [{string.Join(", ", Shape)}] axis {Axis} center {Center} scale {Scale} momentum {Momentum} eps {Epsilon} trainable {Trainable}";
    }

    public static void Run<T>(Scenario s)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int rank = s.Shape.Length;
        int axis = s.Axis < 0 ? s.Axis + rank : s.Axis;
        int channels = s.Shape[axis];
        int n = s.Shape.Aggregate(1, (a, b) => a * b);
        int countPerChannel = n / channels;
        var random = new Random(s.Seed);

        double[]? gamma = s.Scale ? RoundTrip<T>(Enumerable.Range(0, channels).Select(_ => 0.5 + random.NextDouble()).ToArray()) : null;
        double[]? beta = s.Center ? RoundTrip<T>(Enumerable.Range(0, channels).Select(_ => random.NextDouble() - 0.5).ToArray()) : null;
        double[] movingMean = RoundTrip<T>(Enumerable.Range(0, channels).Select(_ => random.NextDouble() - 0.5).ToArray());
        double[] movingVariance = RoundTrip<T>(Enumerable.Range(0, channels).Select(_ => 0.5 + random.NextDouble()).ToArray());
        double[] offsets = Enumerable.Range(0, channels).Select(_ => s.Offset * ((2 * random.NextDouble()) - 1)).ToArray();
        double[] spreads = Enumerable.Range(0, channels).Select(_ => s.Spread * (0.25 + (2 * random.NextDouble()))).ToArray();

        var layer = new BatchNormalization<T>(s.Axis, s.Momentum, s.Epsilon, s.Center, s.Scale, trainable: s.Trainable);
        layer.Build(s.Shape);
        var initial = new List<T[]>();
        if (gamma is not null)
        {
            initial.Add(Tolerance.FromDouble<T>(gamma));
        }

        if (beta is not null)
        {
            initial.Add(Tolerance.FromDouble<T>(beta));
        }

        initial.Add(Tolerance.FromDouble<T>(movingMean));
        initial.Add(Tolerance.FromDouble<T>(movingVariance));
        layer.SetWeights([.. initial]);

        var reference = new ReferenceLayer(s.Axis, s.Momentum, s.Epsilon, gamma, beta, movingMean, movingVariance, s.Trainable);
        double eps = Tolerance.Epsilon<T>();
        double k = (16 + (4 * Math.Sqrt(countPerChannel))) * eps;

        for (int step = 0; step < s.Steps.Length; step++)
        {
            bool training = s.Steps[step];
            T[] x = new T[n];
            for (int i = 0; i < n; i++)
            {
                int c = ReferenceBatchNorm.ChannelOf(i, s.Shape, axis);
                x[i] = T.CreateTruncating(offsets[c] + (spreads[c] * ((2 * random.NextDouble()) - 1)));
            }

            double[] xd = Tolerance.ToDouble<T>(x);
            double[] previousMean = reference.MovingMean;
            double[] previousVariance = reference.MovingVariance;
            var (expected, usedMean, usedVariance) = reference.Call(xd, s.Shape, training);

            NdArray<T> y = layer.Call(new NdArray<T>(x, s.Shape), training);

            string what = $"{typeof(T).Name} {s} step {step} (training {training})";
            var (a, _) = ReferenceBatchNorm.Fold(usedMean, usedVariance, gamma, beta, s.Epsilon);
            Tolerance.ShouldBeWithin(Tolerance.ToDouble<T>(y.ReadOnlySpan), expected, Tolerance.OutputBound(xd, s.Shape, axis, usedMean, usedVariance, a, expected, k), "output of " + what);

            var meanScale = new double[channels];
            var varianceScale = new double[channels];
            for (int c = 0; c < channels; c++)
            {
                meanScale[c] = Math.Abs(reference.MovingMean[c]) + Math.Abs(previousMean[c]) + Math.Sqrt(usedVariance[c]) + Math.Abs(usedMean[c]);
                varianceScale[c] = Math.Abs(reference.MovingVariance[c]) + Math.Abs(previousVariance[c]) + usedVariance[c];
            }

            Tolerance.ShouldBeClose(Tolerance.ToDouble<T>(layer.MovingMean.ReadOnlySpan), reference.MovingMean, meanScale, k, 0, "moving_mean after " + what);
            Tolerance.ShouldBeClose(Tolerance.ToDouble<T>(layer.MovingVariance.ReadOnlySpan), reference.MovingVariance, varianceScale, k, 0, "moving_variance after " + what);
        }
    }

    public static double[] RoundTrip<T>(double[] values)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> => Tolerance.ToDouble<T>(Tolerance.FromDouble<T>(values));
}
