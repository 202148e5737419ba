using System;
using System.Globalization;
using System.IO;

namespace BatchNorm.Demo;

/// <summary>
/// <c>dotnet run --project src/BatchNorm.Demo [-- train options | stats options]</c>.
/// <c>train</c> (the default) trains a small MLP with and without BatchNorm at the same learning rate and charts both;
/// <c>stats</c> normalizes one generated batch and shows the moving statistics converging.
/// </summary>
public static class Program
{
    public const string Usage = """
        usage:
          BatchNorm.Demo [train] [--epochs N] [--learning-rate F] [--batch-size N] [--hidden N] [--seed N]
                         [--svg PATH | --no-svg] [--train-images IDX --train-labels IDX [--test-images IDX --test-labels IDX]]
          BatchNorm.Demo stats [--steps N] [--seed N]
        IDX files are MNIST/KMNIST/Fashion-MNIST format, optionally .gz.
        """;

    public static int Main(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Length > 0 && args[0] is "--help" or "-h" or "help")
        {
            Console.WriteLine(Usage);
            return 0;
        }

        try
        {
            if (args.Length > 0 && args[0] == "stats")
            {
                int steps = 1000;
                int seed = 42;
                for (int i = 1; i < args.Length; i++)
                {
                    switch (args[i])
                    {
                        case "--steps": steps = Positive(args, ref i); break;
                        case "--seed": seed = Integer(args, ref i); break;
                        default: return Fail($"unknown option '{args[i]}'");
                    }
                }

                NormalizationDemo.Run(Console.Out, steps, seed);
                return 0;
            }

            var options = new TrainOptions();
            for (int i = args.Length > 0 && args[0] == "train" ? 1 : 0; i < args.Length; i++)
            {
                options = args[i] switch
                {
                    "--epochs" => options with { Epochs = Positive(args, ref i) },
                    "--learning-rate" => options with { LearningRate = PositiveFloat(args, ref i) },
                    "--batch-size" => options with { BatchSize = Positive(args, ref i) },
                    "--hidden" => options with { Hidden = Positive(args, ref i) },
                    "--seed" => options with { Seed = Integer(args, ref i) },
                    "--svg" => options with { SvgPath = Value(args, ref i) },
                    "--no-svg" => options with { SvgPath = null },
                    "--train-images" => options with { TrainImages = Value(args, ref i) },
                    "--train-labels" => options with { TrainLabels = Value(args, ref i) },
                    "--test-images" => options with { TestImages = Value(args, ref i) },
                    "--test-labels" => options with { TestLabels = Value(args, ref i) },
                    _ => throw new ArgumentException($"unknown option '{args[i]}'"),
                };
            }

            Trainer.Run(options, Console.Out, showProgress: !Console.IsOutputRedirected);
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidDataException or IOException or UnauthorizedAccessException)
        {
            return Fail(e.Message);
        }
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"error: {message}");
        Console.Error.WriteLine(Usage);
        return 2;
    }

    private static string Value(string[] args, ref int i) =>
        ++i < args.Length ? args[i] : throw new ArgumentException($"option '{args[i - 1]}' needs a value");

    private static int Integer(string[] args, ref int i)
    {
        string text = Value(args, ref i);
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)
            ? value
            : throw new ArgumentException($"option '{args[i - 1]}' expects an integer, got '{text}'");
    }

    private static int Positive(string[] args, ref int i)
    {
        int value = Integer(args, ref i);
        return value > 0 ? value : throw new ArgumentException($"option '{args[i - 1]}' expects a value > 0, got {value}");
    }

    private static float PositiveFloat(string[] args, ref int i)
    {
        string text = Value(args, ref i);
        return float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float value) && value > 0 && float.IsFinite(value)
            ? value
            : throw new ArgumentException($"option '{args[i - 1]}' expects a finite number > 0, got '{text}'");
    }
}
