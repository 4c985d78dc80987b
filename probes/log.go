package probes

import "go.uber.org/zap"

func zapVantage(v Vantage) zap.Field { return zap.String("vantage", v.Name) }
