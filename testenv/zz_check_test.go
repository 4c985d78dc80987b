package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestZZCheck(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	u, err := Start(context.Background(), Options{Port: 10253})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, s := range Catalogue() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		args := append([]string{"diagnose", "-o", "json", "--timeout", "15s"}, u.DiagnoseArgs(s)...)
		out, _ := exec.CommandContext(ctx, "/tmp/acmediag-a", args...).Output()
		cancel()
		var rep struct {
			Findings []struct{ Code, Severity, Detail string }
		}
		_ = json.Unmarshal(out, &rep)
		fmt.Println(s.Name, len(rep.Findings), len(out))
		for _, e := range s.Expect {
			ok := false
			for _, f := range rep.Findings {
				if f.Code == string(e.Code) && strings.Contains(f.Detail, e.DetailContains) {
					ok = true
				}
			}
			if !ok {
				fmt.Printf("MISS %s: want %s %q\n", s.Name, e.Code, e.DetailContains)
				for _, f := range rep.Findings {
					fmt.Printf("     got %s %s: %.300s\n", f.Code, f.Severity, f.Detail)
				}
			}
		}
	}
}
