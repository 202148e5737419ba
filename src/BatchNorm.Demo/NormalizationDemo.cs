using System;
using System.Globalization;
using System.IO;
using BatchNorm;
using BatchNorm.Tensors;

namespace BatchNorm.Demo;

/// <summary>
/// The <c>stats</c> command: normalizes a generated batch whose channels have very different means and scales, prints
/// per-channel statistics before and after, then trains for a number of steps and shows the moving statistics
/// converging to the data's true statistics.
/// </summary>
public static class NormalizationDemo
{
    /// <summary>The channels' true means and standard deviations.</summary>
    public static readonly (double Mean, double Std)[] ChannelDistributions =
    [
        (0.0, 1.0),
        (5.0, 0.1),
        (-3.0, 10.0),
        (10000.0, 1.0),
        (0.001, 0.0001),
    ];

    /// <summary>Runs the demo, writing to <paramref name="output"/>; returns the trained layer.</summary>
    public static BatchNormalization Run(TextWriter output, int steps, int seed)
    {
        ArgumentNullException.ThrowIfNull(output);
        const int BatchSize = 256;
        int channels = ChannelDistributions.Length;
        var random = new Random(seed);
        var layer = new BatchNormalization(momentum: 0.99);

        NdArray<float> batch = MakeBatch(random, BatchSize);
        output.WriteLine($"BatchNormalization(axis=-1, momentum={layer.Momentum}, epsilon={layer.Epsilon}) on batches of [{BatchSize}, {channels}], float32");
        output.WriteLine();
        output.WriteLine("One training-mode call on a generated batch:");
        output.WriteLine(" channel |   mean before |    std before |  mean after |  std after");
        NdArray<float> normalized = new BatchNormalization().Call(batch, training: true);
        var (meanBefore, stdBefore) = ColumnStatistics(batch);
        var (meanAfter, stdAfter) = ColumnStatistics(normalized);
        for (int c = 0; c < channels; c++)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $" {c,7} | {meanBefore[c],13:G6} | {stdBefore[c],13:G6} | {meanAfter[c],11:F6} | {stdAfter[c],10:F6}"));
        }

        output.WriteLine(" (std after is sqrt(var / (var + epsilon)): below 1 where the variance is not large against epsilon = 1e-3)");
        output.WriteLine();
        output.WriteLine($"Moving statistics over {steps} training steps (momentum {layer.Momentum}): true value, then after each step shown");
        int[] checkpoints = [1, 10, 50, 100, 200, 300, 500, 1000, 2000];
        output.Write(" step  ");
        for (int c = 0; c < channels; c++)
        {
            output.Write(string.Create(CultureInfo.InvariantCulture, $"| mean[{c}]    var[{c}]      "));
        }

        output.WriteLine();
        output.Write(" true  ");
        for (int c = 0; c < channels; c++)
        {
            var (m, s) = ChannelDistributions[c];
            output.Write(string.Create(CultureInfo.InvariantCulture, $"| {m,-10:G5} {s * s,-12:G5} "));
        }

        output.WriteLine();
        for (int step = 1; step <= steps; step++)
        {
            layer.Call(MakeBatch(random, BatchSize), training: true);
            if (Array.IndexOf(checkpoints, step) >= 0 || step == steps)
            {
                output.Write(string.Create(CultureInfo.InvariantCulture, $" {step,-5} "));
                for (int c = 0; c < channels; c++)
                {
                    output.Write(string.Create(CultureInfo.InvariantCulture,
                        $"| {layer.MovingMean.Span[c],-10:G5} {layer.MovingVariance.Span[c],-12:G5} "));
                }

                output.WriteLine();
            }
        }

        NdArray<float> inference = layer.Call(MakeBatch(random, BatchSize), training: false);
        var (meanInf, stdInf) = ColumnStatistics(inference);
        output.WriteLine();
        output.WriteLine("Inference on a fresh batch with the moving statistics:");
        for (int c = 0; c < channels; c++)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $" channel {c}: mean {meanInf[c],9:F4}, std {stdInf[c],7:F4}"));
        }

        return layer;
    }

    /// <summary>A [rows, C] batch drawn from <see cref="ChannelDistributions"/> (Box-Muller normals).</summary>
    public static NdArray<float> MakeBatch(Random random, int rows)
    {
        ArgumentNullException.ThrowIfNull(random);
        int channels = ChannelDistributions.Length;
        var batch = new NdArray<float>(new NdShape(rows, channels));
        Span<float> data = batch.Span;
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < channels; c++)
            {
                double z = Math.Sqrt(-2.0 * Math.Log(1.0 - random.NextDouble())) * Math.Cos(2.0 * Math.PI * random.NextDouble());
                data[(r * channels) + c] = (float)(ChannelDistributions[c].Mean + (ChannelDistributions[c].Std * z));
            }
        }

        return batch;
    }

    /// <summary>Per-column mean and population standard deviation of a [rows, C] array, in double precision.</summary>
    public static (double[] Mean, double[] Std) ColumnStatistics(NdArray<float> data)
    {
        ArgumentNullException.ThrowIfNull(data);
        int rows = data.Shape[0];
        int channels = data.Shape[1];
        var mean = new double[channels];
        var std = new double[channels];
        ReadOnlySpan<float> x = data.ReadOnlySpan;
        for (int c = 0; c < channels; c++)
        {
            double sum = 0;
            for (int r = 0; r < rows; r++)
            {
                sum += x[(r * channels) + c];
            }

            mean[c] = sum / rows;
            double sq = 0;
            for (int r = 0; r < rows; r++)
            {
                double d = x[(r * channels) + c] - mean[c];
                sq += d * d;
            }

            std[c] = Math.Sqrt(sq / rows);
        }

        return (mean, std);
    }
}
