using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using System.Text.Json;
using BatchNorm.Constraints;
using BatchNorm.Initializers;
using BatchNorm.Regularizers;

namespace BatchNorm.Serialization;

/// <summary>
/// Reads and writes the Keras <c>get_config()</c> JSON of a BatchNormalization layer: snake_case keys, and initializers,
/// regularizers and constraints as <c>{"module": ..., "class_name": ..., "config": {...}, "registered_name": null}</c>
/// (Keras 3) or <c>{"class_name": ..., "config": {...}}</c> (Keras 2) or a bare name such as <c>"zeros"</c>.
/// </summary>
public static class KerasConfigJson
{
    private static readonly HashSet<string> s_ignoredKeys = ["batch_input_shape", "batch_shape", "input_dim", "fused", "input_shape"];

    /// <summary>Writes <paramref name="config"/> as Keras 3 <c>get_config()</c> JSON.</summary>
    public static string Write(BatchNormalizationConfig config, bool indented = false)
    {
        ArgumentNullException.ThrowIfNull(config);
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = indented }))
        {
            w.WriteStartObject();
            w.WriteString("name", config.Name);
            w.WriteBoolean("trainable", config.Trainable);
            w.WriteStartObject("dtype");
            w.WriteString("module", "keras");
            w.WriteString("class_name", "DTypePolicy");
            w.WriteStartObject("config");
            w.WriteString("name", config.DType ?? "float32");
            w.WriteEndObject();
            w.WriteNull("registered_name");
            w.WriteEndObject();
            w.WriteNumber("axis", config.Axis);
            w.WriteNumber("momentum", config.Momentum);
            w.WriteNumber("epsilon", config.Epsilon);
            w.WriteBoolean("center", config.Center);
            w.WriteBoolean("scale", config.Scale);
            WriteObject(w, "beta_initializer", "keras.initializers", config.BetaInitializer ?? new Zeros(), i => (i.ClassName, i.GetConfig()));
            WriteObject(w, "gamma_initializer", "keras.initializers", config.GammaInitializer ?? new Ones(), i => (i.ClassName, i.GetConfig()));
            WriteObject(w, "moving_mean_initializer", "keras.initializers", config.MovingMeanInitializer ?? new Zeros(), i => (i.ClassName, i.GetConfig()));
            WriteObject(w, "moving_variance_initializer", "keras.initializers", config.MovingVarianceInitializer ?? new Ones(), i => (i.ClassName, i.GetConfig()));
            WriteObject(w, "beta_regularizer", "keras.regularizers", config.BetaRegularizer, r => (r.ClassName, r.GetConfig()));
            WriteObject(w, "gamma_regularizer", "keras.regularizers", config.GammaRegularizer, r => (r.ClassName, r.GetConfig()));
            WriteObject(w, "beta_constraint", "keras.constraints", config.BetaConstraint, c => (c.ClassName, c.GetConfig()));
            WriteObject(w, "gamma_constraint", "keras.constraints", config.GammaConstraint, c => (c.ClassName, c.GetConfig()));
            w.WriteBoolean("synchronized", config.Synchronized);
            w.WriteBoolean("renorm", config.Renorm);
            if (config.RenormClipping is { } clipping)
            {
                w.WriteStartObject("renorm_clipping");
                WriteOptional(w, "rmax", clipping.Rmax);
                WriteOptional(w, "rmin", clipping.Rmin);
                WriteOptional(w, "dmax", clipping.Dmax);
                w.WriteEndObject();
            }
            else
            {
                w.WriteNull("renorm_clipping");
            }

            w.WriteNumber("renorm_momentum", config.RenormMomentum);
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>
    /// Reads a BatchNormalization configuration: either the <c>get_config()</c> object itself or a layer entry of a model
    /// JSON (<c>{"class_name": "BatchNormalization", "config": {...}, ...}</c>), from Keras 3 or tf.keras 2. Missing keys take
    /// Keras' defaults. tf.keras 2's <c>"axis": [3]</c> is read as 3; <c>fused</c> and input-shape keys are ignored.
    /// </summary>
    /// <exception cref="FormatException">The text is not JSON, a key is unknown, a value has the wrong type or is invalid
    /// (the message names the key), or a feature is not supported (multi-axis, virtual batches, adjustment, an unknown
    /// initializer, regularizer or constraint class).</exception>
    public static BatchNormalizationConfig Read(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = false });
        }
        catch (JsonException e)
        {
            throw new FormatException($"The BatchNormalization configuration is not valid JSON: {e.Message}", e);
        }

        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException($"Expected a JSON object for the BatchNormalization configuration, got {root.ValueKind}.");
            }

            if (root.TryGetProperty("class_name", out JsonElement className))
            {
                if (className.ValueKind != JsonValueKind.String || className.GetString() != "BatchNormalization")
                {
                    throw new FormatException($"Expected a layer entry with \"class_name\": \"BatchNormalization\", got {className.GetRawText()}.");
                }

                if (!root.TryGetProperty("config", out JsonElement inner) || inner.ValueKind != JsonValueKind.Object)
                {
                    throw new FormatException("Expected the layer entry to have a \"config\" object.");
                }

                root = inner;
            }

            return ReadConfig(root);
        }
    }

    private static BatchNormalizationConfig ReadConfig(JsonElement o)
    {
        var config = new BatchNormalizationConfig { DType = null };
        foreach (JsonProperty p in o.EnumerateObject())
        {
            JsonElement v = p.Value;
            string key = p.Name;
            try
            {
                config = key switch
                {
                    "name" => config with { Name = String(v, key) },
                    "trainable" => config with { Trainable = Bool(v, key) },
                    "dtype" => config with { DType = DType(v) },
                    "axis" => config with { Axis = Axis(v) },
                    "momentum" => config with { Momentum = Number(v, key) },
                    "epsilon" => config with { Epsilon = Number(v, key) },
                    "center" => config with { Center = Bool(v, key) },
                    "scale" => config with { Scale = Bool(v, key) },
                    "beta_initializer" => config with { BetaInitializer = ReadInitializer(v, key) },
                    "gamma_initializer" => config with { GammaInitializer = ReadInitializer(v, key) },
                    "moving_mean_initializer" => config with { MovingMeanInitializer = ReadInitializer(v, key) },
                    "moving_variance_initializer" => config with { MovingVarianceInitializer = ReadInitializer(v, key) },
                    "beta_regularizer" => config with { BetaRegularizer = ReadRegularizer(v, key) },
                    "gamma_regularizer" => config with { GammaRegularizer = ReadRegularizer(v, key) },
                    "beta_constraint" => config with { BetaConstraint = ReadConstraint(v, key) },
                    "gamma_constraint" => config with { GammaConstraint = ReadConstraint(v, key) },
                    "synchronized" => config with { Synchronized = Bool(v, key) },
                    "renorm" => config with { Renorm = Bool(v, key) },
                    "renorm_clipping" => config with { RenormClipping = ReadClipping(v) },
                    "renorm_momentum" => config with { RenormMomentum = Number(v, key) },
                    "virtual_batch_size" or "adjustment" => v.ValueKind == JsonValueKind.Null
                        ? config
                        : throw new FormatException($"'{key}' (tf.keras 2 only) is not supported; expected null, got {v.GetRawText()}."),
                    _ when s_ignoredKeys.Contains(key) => config,
                    _ => throw new FormatException($"Unknown BatchNormalization configuration key '{key}'."),
                };
            }
            catch (ArgumentException e)
            {
                throw new FormatException($"Invalid '{key}' in the BatchNormalization configuration: {e.Message}", e);
            }
        }

        // Validate the arguments together, as the constructor will.
        try
        {
            _ = new BatchNormalization<double>(
                config.Axis, config.Momentum, config.Epsilon, renorm: config.Renorm, renormClipping: config.RenormClipping, renormMomentum: config.RenormMomentum);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new FormatException($"Invalid '{ToSnakeCase(e.ParamName)}' in the BatchNormalization configuration: {e.Message}", e);
        }

        return config;
    }

    private static string ToSnakeCase(string? name)
    {
        if (name is null)
        {
            return "?";
        }

        var sb = new StringBuilder();
        foreach (char ch in name)
        {
            if (char.IsUpper(ch))
            {
                sb.Append('_').Append(char.ToLowerInvariant(ch));
            }
            else
            {
                sb.Append(ch);
            }
        }

        return sb.ToString();
    }

    private static string? DType(JsonElement v)
    {
        string? name = v.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object when v.TryGetProperty("config", out JsonElement c) && c.TryGetProperty("name", out JsonElement n) && n.ValueKind == JsonValueKind.String
                => n.GetString(),
            _ => throw new FormatException($"Expected 'dtype' to be a string or a DTypePolicy object, got {v.GetRawText()}."),
        };

        // Mixed-precision policies keep float32 variables, which is what this layer's element type is.
        return name switch
        {
            null => null,
            "float32" or "mixed_float16" or "mixed_bfloat16" => "float32",
            "float64" => "float64",
            _ => throw new FormatException($"Unsupported 'dtype' \"{name}\": expected float32, float64, mixed_float16 or mixed_bfloat16."),
        };
    }

    private static int Axis(JsonElement v)
    {
        if (v.ValueKind == JsonValueKind.Array)
        {
            if (v.GetArrayLength() != 1)
            {
                throw new FormatException($"'axis' with several axes ({v.GetRawText()}) is not supported yet; expected one integer.");
            }

            v = v[0];
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int axis))
        {
            throw new FormatException($"Expected 'axis' to be an integer, got {v.GetRawText()}.");
        }

        return axis;
    }

    private static RenormClipping? ReadClipping(JsonElement v)
    {
        if (v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (v.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"Expected 'renorm_clipping' to be an object or null, got {v.GetRawText()}.");
        }

        double? rmax = null, rmin = null, dmax = null;
        foreach (JsonProperty p in v.EnumerateObject())
        {
            double? value = p.Value.ValueKind == JsonValueKind.Null ? null : Number(p.Value, "renorm_clipping." + p.Name);
            switch (p.Name)
            {
                case "rmax": rmax = value; break;
                case "rmin": rmin = value; break;
                case "dmax": dmax = value; break;
                default: throw new FormatException($"Unknown 'renorm_clipping' key '{p.Name}': expected rmax, rmin or dmax.");
            }
        }

        return new RenormClipping(rmax, rmin, dmax);
    }

    private static Initializer? ReadInitializer(JsonElement v, string key) => ReadObject(v, key, Initializer.Get, (className, c) => className switch
    {
        "Zeros" => new Zeros(),
        "Ones" => new Ones(),
        "Constant" => new Constant(Get(c, "value", 0.0)),
        "RandomNormal" => new RandomNormal(Get(c, "mean", 0.0), Get(c, "stddev", 0.05), Seed(c)),
        "RandomUniform" => new RandomUniform(Get(c, "minval", -0.05), Get(c, "maxval", 0.05), Seed(c)),
        "TruncatedNormal" => new TruncatedNormal(Get(c, "mean", 0.0), Get(c, "stddev", 0.05), Seed(c)),
        _ => throw new FormatException($"Unsupported initializer class '{className}' for '{key}': expected Zeros, Ones, Constant, RandomNormal, RandomUniform or TruncatedNormal."),
    });

    private static Regularizer? ReadRegularizer(JsonElement v, string key) => ReadObject(v, key, Regularizer.Get, (className, c) => className switch
    {
        "L1" => new L1(Get(c, "l1", 0.01)),
        "L2" => new L2(Get(c, "l2", 0.01)),
        "L1L2" => new L1L2(Get(c, "l1", 0.0), Get(c, "l2", 0.0)),
        _ => throw new FormatException($"Unsupported regularizer class '{className}' for '{key}': expected L1, L2 or L1L2."),
    });

    private static Constraint? ReadConstraint(JsonElement v, string key) => ReadObject(v, key, Constraint.Get, (className, c) => className switch
    {
        "NonNeg" => new NonNeg(),
        "MaxNorm" => new MaxNorm(Get(c, "max_value", 2.0), ConstraintAxis(c)),
        "MinMaxNorm" => new MinMaxNorm(Get(c, "min_value", 0.0), Get(c, "max_value", 1.0), Get(c, "rate", 1.0), ConstraintAxis(c)),
        "UnitNorm" => new UnitNorm(ConstraintAxis(c)),
        _ => throw new FormatException($"Unsupported constraint class '{className}' for '{key}': expected NonNeg, MaxNorm, MinMaxNorm or UnitNorm."),
    });

    private static TResult? ReadObject<TResult>(JsonElement v, string key, Func<string, TResult> byName, Func<string, JsonElement, TResult> byClass)
        where TResult : class
    {
        switch (v.ValueKind)
        {
            case JsonValueKind.Null:
                return null;
            case JsonValueKind.String:
                return byName(v.GetString()!);
            case JsonValueKind.Object:
                if (!v.TryGetProperty("class_name", out JsonElement className) || className.ValueKind != JsonValueKind.String)
                {
                    throw new FormatException($"Expected '{key}' to have a string \"class_name\", got {v.GetRawText()}.");
                }

                JsonElement config = v.TryGetProperty("config", out JsonElement c) ? c : default;
                if (config.ValueKind is not (JsonValueKind.Object or JsonValueKind.Undefined or JsonValueKind.Null))
                {
                    throw new FormatException($"Expected '{key}.config' to be an object, got {config.GetRawText()}.");
                }

                return byClass(className.GetString()!, config);
            default:
                throw new FormatException($"Expected '{key}' to be null, a name or an object, got {v.GetRawText()}.");
        }
    }

    private static double Get(JsonElement config, string name, double fallback) =>
        config.ValueKind == JsonValueKind.Object && config.TryGetProperty(name, out JsonElement v) && v.ValueKind != JsonValueKind.Null
            ? Number(v, name)
            : fallback;

    private static int? Seed(JsonElement config)
    {
        if (config.ValueKind != JsonValueKind.Object || !config.TryGetProperty("seed", out JsonElement v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int seed)
            ? seed
            : throw new FormatException($"Expected 'seed' to be an integer or null, got {v.GetRawText()}.");
    }

    private static int ConstraintAxis(JsonElement config)
    {
        if (config.ValueKind != JsonValueKind.Object || !config.TryGetProperty("axis", out JsonElement v))
        {
            return 0;
        }

        return Axis(v);
    }

    private static double Number(JsonElement v, string key) =>
        v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw new FormatException($"Expected '{key}' to be a number, got {v.GetRawText()}.");

    private static bool Bool(JsonElement v, string key) => v.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw new FormatException($"Expected '{key}' to be true or false, got {v.GetRawText()}."),
    };

    private static string String(JsonElement v, string key) =>
        v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new FormatException($"Expected '{key}' to be a string, got {v.GetRawText()}.");

    private static void WriteOptional(Utf8JsonWriter w, string name, double? value)
    {
        if (value is double d)
        {
            w.WriteNumber(name, d);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private static void WriteObject<TValue>(Utf8JsonWriter w, string name, string module, TValue? value, Func<TValue, (string ClassName, IReadOnlyDictionary<string, object?> Config)> describe)
        where TValue : class
    {
        if (value is null)
        {
            w.WriteNull(name);
            return;
        }

        var (className, config) = describe(value);
        w.WriteStartObject(name);
        w.WriteString("module", module);
        w.WriteString("class_name", className);
        w.WriteStartObject("config");
        foreach (KeyValuePair<string, object?> entry in config)
        {
            switch (entry.Value)
            {
                case null:
                    w.WriteNull(entry.Key);
                    break;
                case int i:
                    w.WriteNumber(entry.Key, i);
                    break;
                case double d:
                    w.WriteNumber(entry.Key, d);
                    break;
                default:
                    w.WriteString(entry.Key, Convert.ToString(entry.Value, CultureInfo.InvariantCulture));
                    break;
            }
        }

        w.WriteEndObject();
        w.WriteNull("registered_name");
        w.WriteEndObject();
    }
}
