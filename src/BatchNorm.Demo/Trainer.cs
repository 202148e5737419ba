using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;

namespace BatchNorm.Demo;

/// <summary>Options of the <c>train</c> command.</summary>
public sealed record TrainOptions
{
    public int Epochs { get; init; } = 15;

    public float LearningRate { get; init; } = 0.1f;

    public int BatchSize { get; init; } = 64;

    public int Hidden { get; init; } = 64;

    public int Seed { get; init; } = 1;

    public int TrainCount { get; init; } = 6000;

    public int TestCount { get; init; } = 2000;

    public string? SvgPath { get; init; } = "batchnorm-demo-loss.svg";

    public string? TrainImages { get; init; }

    public string? TrainLabels { get; init; }

    public string? TestImages { get; init; }

    public string? TestLabels { get; init; }
}

/// <summary>Per-epoch results of one model.</summary>
public sealed record RunResult(string Name, List<double> EpochLoss, List<double> EpochAccuracy, double TestAccuracy, bool Diverged);

/// <summary>Trains the MLP with and without BatchNorm, side by side, at the same learning rate.</summary>
public static class Trainer
{
    public static (RunResult WithBatchNorm, RunResult WithoutBatchNorm) Run(TrainOptions options, TextWriter output, bool showProgress)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        var (train, test, source) = Load(options);
        output.WriteLine($"Data: {source}: {train.Count} training and {test.Count} held-out samples, {train.FeatureCount} features, {train.Classes} classes");
        output.WriteLine($"Model: Dense({options.Hidden}) -> [BatchNorm] -> ReLU -> Dense({options.Hidden}) -> [BatchNorm] -> ReLU -> Dense({train.Classes}) -> softmax");
        output.WriteLine($"SGD, learning rate {options.LearningRate.ToString(CultureInfo.InvariantCulture)} decaying linearly to 0, batch {options.BatchSize}, {options.Epochs} epochs; both models start from the same weights");
        output.WriteLine();

        var models = new[]
        {
            new Mlp(train.FeatureCount, options.Hidden, train.Classes, useBatchNorm: true, options.Seed),
            new Mlp(train.FeatureCount, options.Hidden, train.Classes, useBatchNorm: false, options.Seed),
        };
        var results = new[]
        {
            new RunResult("with BatchNorm", [], [], 0, false),
            new RunResult("without BatchNorm", [], [], 0, false),
        };
        var diverged = new bool[2];
        var random = new Random(options.Seed + 1);
        int[] order = new int[train.Count];
        for (int i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        int batches = train.Count / options.BatchSize;
        var clock = Stopwatch.StartNew();
        for (int epoch = 1; epoch <= options.Epochs; epoch++)
        {
            random.Shuffle(order);
            var sums = new double[2];

            // Linear decay to zero, the same for both models: late steps are small, so the moving statistics settle.
            float learningRate = options.LearningRate * (options.Epochs - epoch + 1) / options.Epochs;
            for (int b = 0; b < batches; b++)
            {
                var (x, y) = train.Batch(order, b * options.BatchSize, options.BatchSize);
                for (int m = 0; m < 2; m++)
                {
                    if (!diverged[m])
                    {
                        double loss = models[m].TrainStep(x, y, options.BatchSize, learningRate);
                        sums[m] += loss;
                        diverged[m] = !double.IsFinite(loss);
                    }
                }

                if (showProgress && (b % 8 == 0 || b == batches - 1))
                {
                    int done = (b + 1) * 30 / batches;
                    output.Write($"\r epoch {epoch,3}/{options.Epochs} [{new string('#', done)}{new string('.', 30 - done)}] {(b + 1) * 100 / batches,3}%");
                }
            }

            if (showProgress)
            {
                output.Write('\r');
            }

            var line = new List<string>();
            for (int m = 0; m < 2; m++)
            {
                double loss = diverged[m] ? double.NaN : sums[m] / batches;
                double accuracy = diverged[m] ? double.NaN : models[m].Evaluate(test.Features, test.Labels, test.FeatureCount).Accuracy;
                results[m].EpochLoss.Add(loss);
                results[m].EpochAccuracy.Add(accuracy);
                line.Add(diverged[m]
                    ? $"{results[m].Name}: diverged (loss is not finite)"
                    : string.Create(CultureInfo.InvariantCulture, $"{results[m].Name}: loss {loss,8:F4}  held-out accuracy {accuracy,6:P1}"));
            }

            output.WriteLine($" epoch {epoch,3}/{options.Epochs}  {string.Join("  |  ", line)}");
        }

        for (int m = 0; m < 2; m++)
        {
            double accuracy = diverged[m] ? double.NaN : models[m].Evaluate(test.Features, test.Labels, test.FeatureCount).Accuracy;
            results[m] = results[m] with { TestAccuracy = accuracy, Diverged = diverged[m] };
        }

        output.WriteLine();
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Trained in {clock.Elapsed.TotalSeconds:F1} s."));
        foreach (RunResult r in results)
        {
            output.WriteLine(r.Diverged
                ? $"Held-out accuracy {r.Name}: none (training diverged)"
                : string.Create(CultureInfo.InvariantCulture, $"Held-out accuracy {r.Name}: {r.TestAccuracy:P2}"));
        }

        if (options.SvgPath is { } path)
        {
            string svg = SvgChart.LossCurves(
                $"Training loss, learning rate {options.LearningRate.ToString(CultureInfo.InvariantCulture)}",
                [(results[0].Name, "#1f77b4", results[0].EpochLoss), (results[1].Name, "#d62728", results[1].EpochLoss)]);
            File.WriteAllText(path, svg);
            output.WriteLine($"Loss curves written to {Path.GetFullPath(path)}");
        }

        return (results[0], results[1]);
    }

    private static (DataSet Train, DataSet Test, string Source) Load(TrainOptions options)
    {
        if (options.TrainImages is null)
        {
            var (train, test) = Data.Synthetic(options.TrainCount, options.TestCount, options.Seed);
            return (train, test, "synthetic (16 mixed features, scales 1e-2..1e3, offsets up to 10x scale)");
        }

        DataSet all = Data.ReadIdx(options.TrainImages, options.TrainLabels ?? throw new ArgumentException("--train-labels is required with --train-images.", nameof(options)));
        if (options.TestImages is not null)
        {
            DataSet test = Data.ReadIdx(options.TestImages, options.TestLabels ?? throw new ArgumentException("--test-labels is required with --test-images.", nameof(options)));
            return (all, test, $"IDX {Path.GetFileName(options.TrainImages)}");
        }

        // No test files: hold out the last sixth.
        int testCount = Math.Max(1, all.Count / 6);
        int trainCount = all.Count - testCount;
        var trainSet = new DataSet(all.Features[..(trainCount * all.FeatureCount)], all.Labels[..trainCount], all.FeatureCount, all.Classes);
        var testSet = new DataSet(all.Features[(trainCount * all.FeatureCount)..], all.Labels[trainCount..], all.FeatureCount, all.Classes);
        return (trainSet, testSet, $"IDX {Path.GetFileName(options.TrainImages)} (last sixth held out)");
    }
}
